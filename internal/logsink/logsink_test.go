package logsink

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
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
}

// gatedBuf blocks its first Write until released, telling the test when that write began.
type gatedBuf struct {
	slowBuf
	entered, release chan struct{}
	once             sync.Once
}

func (g *gatedBuf) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered); <-g.release })
	return g.slowBuf.Write(p)
}

// Lines that arrive while a batch is being written go out together, in one write: what
// batching is for. The output is held inside its first write while 500 lines come in.
func TestLinesWaitingForTheOutputShareOneWrite(t *testing.T) {
	out := &gatedBuf{entered: make(chan struct{}), release: make(chan struct{})}
	w := New(out)
	fmt.Fprint(w, "first\n")
	select {
	case <-out.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never wrote the first line")
	}
	var want strings.Builder
	want.WriteString("first\n")
	for i := range 500 {
		fmt.Fprintf(w, "line %d\n", i)
		fmt.Fprintf(&want, "line %d\n", i)
	}
	close(out.release)
	w.Close()
	if out.b.String() != want.String() {
		t.Fatalf("output differs from the lines written:\n%q", out.b.String())
	}
	if out.writes != 2 {
		t.Fatalf("%d writes for a first line and 500 that waited together, want 2", out.writes)
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
