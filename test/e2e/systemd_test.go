package e2e

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// TestSystemdNotify plays systemd for a Type=notify unit: a datagram socket
// in NOTIFY_SOCKET sees READY=1 once usher serves, RELOADING=1 (with
// MONOTONIC_USEC) and READY=1 again around a SIGHUP and the API's reload,
// STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{N: 1, Users: 2})
	path := filepath.Join(t.TempDir(), "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	next := func(what string) string {
		t.Helper()
		buf := make([]byte, 4096)
		sock.SetReadDeadline(time.Now().Add(60 * time.Second))
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		return string(buf[:n])
	}

	u := startUsher(t, cl, usherOpts{env: []string{"NOTIFY_SOCKET=" + path}})
	if m := next("READY=1"); m != "READY=1" {
		t.Fatalf("first message %q, want READY=1", m)
	}
	u.Signal(syscall.SIGHUP)
	m := next("RELOADING=1")
	fields := strings.Split(m, "\n")
	if len(fields) != 2 || fields[0] != "RELOADING=1" || !strings.HasPrefix(fields[1], "MONOTONIC_USEC=") {
		t.Fatalf("on SIGHUP %q, want RELOADING=1 and MONOTONIC_USEC", m)
	}
	if usec, err := strconv.ParseInt(strings.TrimPrefix(fields[1], "MONOTONIC_USEC="), 10, 64); err != nil || usec <= 0 {
		t.Fatalf("MONOTONIC_USEC in %q", m)
	}
	if m := next("READY=1 after reload"); !strings.HasPrefix(m, "READY=1\nSTATUS=configuration reloaded") {
		t.Fatalf("after the reload %q, want READY=1", m)
	}
	// The API's reload is the same reload.
	u.mustAPI("reload", nil)
	if m := next("RELOADING=1 from the API"); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("on the API's reload %q", m)
	}
	if m := next("READY=1 after the API's reload"); !strings.HasPrefix(m, "READY=1\n") {
		t.Fatalf("after the API's reload %q", m)
	}
	done := make(chan int)
	go func() { done <- u.Stop() }()
	if m := next("STOPPING=1"); m != "STOPPING=1" {
		t.Fatalf("on SIGTERM %q, want STOPPING=1", m)
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
