package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedEnv names the shared directory (the team's conformance cases, spec and anchor) when it
// is not beside the clone.
const SharedEnv = "USHER_SHARED"

// SharedDir returns the absolute path of the shared directory that holds want (a path inside
// it, e.g. "conformance/cases"): $USHER_SHARED, else ../shared beside the module's root (CI's
// layout). Where it is missing the test is skipped on a developer's machine, and fails where
// the run must be complete: under CI (CI=true) or with USHER_REQUIRE_DOVECOT=1, as `make test`
// sets, so a golden test can never pass by not running.
func SharedDir(t testing.TB, want string) string {
	t.Helper()
	dir := os.Getenv(SharedEnv)
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		dir = filepath.Join(root, "..", "shared")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if _, err := os.Stat(filepath.Join(abs, want)); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv(RequireEnv) == "1" {
			t.Fatalf("testenv: shared material missing (%v); set %s to the shared directory", err, SharedEnv)
		}
		t.Skipf("testenv: shared material missing (%v); set %s to the shared directory", err, SharedEnv)
	}
	return abs
}

// moduleRoot is the nearest directory at or above the working directory (a test runs in its
// package's directory) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
