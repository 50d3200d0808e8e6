package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/usher-mail/usher/internal/director"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openNode(t *testing.T, dir string) *Node {
	t.Helper()
	n, err := Open(Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return n
}

func mustApply(t *testing.T, n *Node, c Command) Result {
	t.Helper()
	r, err := n.Apply(context.Background(), c)
	if err != nil {
		t.Fatalf("apply %v: %v", c.Op, err)
	}
	return r
}

func TestNodeReopen(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	if !n.IsLeader() {
		t.Fatal("single node is not leader after Open")
	}
	mustApply(t, n, Command{Op: OpInitHosts, Hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: -1}}, {Host: director.Host{IP: ip2, VhostCount: -1}}}})
	mustApply(t, n, hostSet(ip3, "t", 7))
	if r := mustApply(t, n, assign("", 42, ip2, 100)); r.User.Host != ip2 {
		t.Errorf("assign %+v", r)
	}
	if r := mustApply(t, n, assign("", 42, ip1, 101)); r.User.Host != ip2 {
		t.Errorf("second assign moved the user: %+v", r)
	}
	if r := mustApply(t, n, hostSet(ip3, "other", 1)); r.Code != TagChange {
		t.Errorf("tag change: %v", r.Code)
	}
	mustApply(t, n, Command{Op: OpHostRemove, IP: ip1})
	if st := n.Stats(); st["state"] != "Leader" || st["fsm_users"] != "1" {
		t.Errorf("stats %v", st)
	}
	if addr, id := n.Leader(); addr == "" || id != "usher" {
		t.Errorf("leader %q %q", addr, id)
	}
	var before []byte
	n.Read(func(s View) { before, _ = s.MarshalBinary() })
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := n.Apply(context.Background(), assign("", 1, ip2, 1)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("apply after close: %v", err)
	}

	n = openNode(t, dir)
	defer n.Close()
	var after []byte
	n.Read(func(s View) {
		after, _ = s.MarshalBinary()
		if got := s.RemovedHosts(); len(got) != 1 || got[0] != ip1 {
			t.Errorf("removed %v", got)
		}
	})
	if string(before) != string(after) {
		t.Errorf("state changed across restart")
	}
	// Init with the same config again must not resurrect the removed host.
	mustApply(t, n, Command{Op: OpInitHosts, Hosts: []Host{{Host: director.Host{IP: ip1, VhostCount: -1}}, {Host: director.Host{IP: ip2, VhostCount: -1}}}})
	n.Read(func(s View) {
		if _, ok := s.Host(ip1); ok {
			t.Errorf("removed host came back")
		}
	})
}

func TestNodeApplyCanceled(t *testing.T) {
	n := openNode(t, t.TempDir())
	defer n.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.Apply(ctx, hostSet(ip1, "", -1)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("canceled apply: %v", err)
	}
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir)
	defer n.Close()
	if _, err := Open(Config{Dir: dir, Logger: quietLogger()}); err == nil {
		t.Error("second Open on a held directory succeeded")
	}
}

const killDirEnv = "USHER_CLUSTER_KILL_DIR"

// TestKillRecovery runs a child process that applies commands from several
// goroutines, prints each one whose Apply returned nil, and SIGKILLs itself
// mid-stream. Every printed command must survive the restart.
func TestKillRecovery(t *testing.T) {
	if dir := os.Getenv(killDirEnv); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("subprocess test")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillRecovery$")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []uint32
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if h, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			v, err := strconv.ParseUint(h, 10, 32)
			if err != nil {
				t.Fatalf("bad line %q", sc.Text())
			}
			acked = append(acked, uint32(v))
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", err)
	}
	if len(acked) < killAfter {
		t.Fatalf("child acknowledged only %d commands", len(acked))
	}

	n := openNode(t, dir)
	defer n.Close()
	n.Read(func(s View) {
		for _, h := range acked {
			if _, ok := s.User("", h); !ok {
				t.Errorf("acknowledged user %d lost", h)
			}
		}
		t.Logf("%d acknowledged, %d present after kill", len(acked), s.UserTotal())
	})
}

const killAfter = 300

func killChild(dir string) {
	n, err := Open(Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	if r, err := n.Apply(context.Background(), hostSet(ip1, "", -1)); err != nil || r.Code != OK {
		fmt.Fprintln(os.Stderr, "child host:", err)
		os.Exit(3)
	}
	var (
		mu     sync.Mutex
		acks   int
		next   atomic.Uint32
		wg     sync.WaitGroup
		stdout = os.Stdout
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				h := next.Add(1)
				if _, err := n.Apply(context.Background(), assign("", h, ip1, int64(h))); err != nil {
					continue
				}
				mu.Lock()
				fmt.Fprintf(stdout, "ack %d\n", h)
				acks++
				if acks == killAfter {
					// Other goroutines may have commands in flight: that is the point.
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestHclogBridge(t *testing.T) {
	var buf strings.Builder
	l := newHclog(slog.New(slog.NewTextHandler(&buf, nil))).Named("snap")
	l.Info("chatty")
	l.Warn("careful", "peer", "n2")
	l.Error("broken")
	out := buf.String()
	if strings.Contains(out, "chatty") || !strings.Contains(out, "level=WARN msg=careful peer=n2") ||
		!strings.Contains(out, "level=ERROR msg=broken") || !strings.Contains(out, "component=raft.snap") {
		t.Errorf("bridged log:\n%s", out)
	}
}
