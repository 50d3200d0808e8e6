package logsink

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type slowBuf struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *slowBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

// Every line arrives whole, each writer's lines in order, and Close leaves nothing behind.
func TestLinesArriveWholeAndInOrder(t *testing.T) {
	var out slowBuf
	w := New(&out)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				fmt.Fprintf(w, "g%d line %d\n", g, i)
			}
		}()
	}
	wg.Wait()
	w.Close()
	next := map[string]int{}
	lines := strings.Split(strings.TrimSuffix(out.b.String(), "\n"), "\n")
	if len(lines) != 16000 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, l := range lines {
		var g string
		var i int
		if _, err := fmt.Sscanf(l, "%s line %d", &g, &i); err != nil || next[g] != i {
			t.Fatalf("line %q out of order (want %d)", l, next[g])
		}
		next[g]++
	}
	if out.writes >= 16000 {
		t.Logf("no batching happened (%d writes); fine, but unexpected", out.writes)
	}
}

func TestWriteAfterCloseGoesThrough(t *testing.T) {
	var out slowBuf
	w := New(&out)
	w.Close()
	fmt.Fprint(w, "late\n")
	if out.b.String() != "late\n" {
		t.Fatalf("got %q", out.b.String())
	}
	w.Close()
}

// Attributes given to With come first and in order, as slog's own handler writes them.
func TestLoggerAttributeOrder(t *testing.T) {
	var out slowBuf
	log, w := NewLogger(&out, slog.LevelInfo)
	l := log.With("session", "s1", "rip", "127.0.0.1").With("user", "u")
	l.Debug("hidden")
	l.Info("started proxying", "backend", "10.0.0.1")
	log.WithGroup("g").Info("grouped", "k", 1)
	w.Close()
	got := out.b.String()
	if !strings.Contains(got, `msg="started proxying" session=s1 rip=127.0.0.1 user=u backend=10.0.0.1`+"\n") ||
		!strings.Contains(got, "msg=grouped g.k=1\n") || strings.Contains(got, "hidden") {
		t.Fatalf("log:\n%s", got)
	}
}
