package testenv

import (
	"fmt"
	"os"
	"testing"
)

// MainWithUsher is a TestMain body for packages that run the usher binary:
// it builds it once (BuildUsher), stores its path in *bin, runs the tests and
// removes the build.
func MainWithUsher(m *testing.M, bin *string, race bool) int {
	path, cleanup, err := BuildUsher(race)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*bin = path
	return m.Run()
}
