package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// BinEnv names a prebuilt usher binary that BuildUsher returns instead of
// building one, e.g. a release build, or while another package is mid-edit.
const BinEnv = "USHER_BIN"

// BuildUsher builds cmd/usher (from a test two directories below the module
// root, e.g. test/e2e) into a temporary directory, with the race detector
// when race is set; cleanup removes it. With $USHER_BIN set it builds nothing
// and returns that binary.
func BuildUsher(race bool) (bin string, cleanup func(), err error) {
	if bin := os.Getenv(BinEnv); bin != "" {
		return bin, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "usher-test-bin-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "usher")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../../cmd/usher")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building usher: %w", err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// LogBuffer collects a process's output; safe for concurrent writes.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ErrNotAccepted is a doveadm request that got no usable answer: a transport
// error, a non-200 status or a body that is not one doveadm element.
var ErrNotAccepted = errors.New("doveadm request not accepted")

// DoveadmCall runs one command on a doveadm HTTP API (usher's or a
// backend's) with Basic doveadm:password and returns its rows, or the exit
// code of an error element.
func DoveadmCall(baseURL, password, cmd string, params map[string]any) (rows []map[string]any, exitCode int, err error) {
	elems, err := doveadmPost(baseURL, password, cmd, params)
	var de *DoveadmError
	switch {
	case errors.As(err, &de):
		return nil, de.ExitCode, nil
	case err != nil:
		return nil, 0, fmt.Errorf("%w: %s: %v", ErrNotAccepted, cmd, err)
	case len(elems) != 1:
		return nil, 0, fmt.Errorf("%w: %s: %d elements, want one", ErrNotAccepted, cmd, len(elems))
	}
	if err := json.Unmarshal(elems[0], &rows); err != nil {
		return nil, 0, fmt.Errorf("%w: %s: bad rows %s", ErrNotAccepted, cmd, elems[0])
	}
	return rows, 0, nil
}
