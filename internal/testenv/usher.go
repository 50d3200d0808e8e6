package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// BuildUsher builds cmd/usher (from a test two directories below the module
// root, e.g. test/e2e) into a temporary directory, with the race detector
// when race is set. cleanup removes it. Meant for TestMain.
func BuildUsher(race bool) (bin string, cleanup func(), err error) {
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
	if params == nil {
		params = map[string]any{}
	}
	body, _ := json.Marshal([]any{[]any{cmd, params, "t1"}})
	req, err := http.NewRequest("POST", baseURL+"/doveadm/v1", bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.SetBasicAuth("doveadm", password)
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %v", ErrNotAccepted, cmd, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, 0, fmt.Errorf("%w: %s: HTTP %d %s", ErrNotAccepted, cmd, resp.StatusCode, data)
	}
	var out [][]json.RawMessage
	if err := json.Unmarshal(data, &out); err != nil || len(out) != 1 || len(out[0]) != 3 {
		return nil, 0, fmt.Errorf("%w: %s: bad response %s", ErrNotAccepted, cmd, data)
	}
	var kind string
	json.Unmarshal(out[0][0], &kind)
	if kind == "error" {
		var e struct{ ExitCode int }
		json.Unmarshal(out[0][1], &e)
		return nil, e.ExitCode, nil
	}
	if err := json.Unmarshal(out[0][1], &rows); err != nil {
		return nil, 0, fmt.Errorf("%w: %s: bad rows %s", ErrNotAccepted, cmd, data)
	}
	return rows, 0, nil
}
