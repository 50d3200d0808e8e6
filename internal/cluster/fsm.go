package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// fsm adapts State to raft.FSM. The lock lets readers (Node.Read) run
// alongside raft's single applying goroutine.
type fsm struct {
	mu    sync.RWMutex
	state *State
	log   *slog.Logger
}

func (f *fsm) Apply(l *raft.Log) any {
	var c Command
	if err := c.UnmarshalBinary(l.Data); err != nil {
		// Every node decodes the same bytes the same way, so skipping keeps
		// replicas identical; it can only mean a newer writer or corruption.
		f.log.Error("cluster: undecodable log entry skipped", "index", l.Index, "err", err)
		return Result{Code: Invalid}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.Apply(c)
}

// Snapshot encodes under the read lock: at a million users that is tens of
// milliseconds, cheaper than keeping a copy-on-write structure.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := f.state.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("cluster: read snapshot: %w", err)
	}
	s := NewState()
	if err := s.UnmarshalBinary(b); err != nil {
		return err
	}
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshot) Release() {}

// hclogSink forwards raft's hclog output to slog. Only warnings and errors
// pass: raft's info level narrates every election and snapshot.
type hclogSink struct{ log *slog.Logger }

func newHclog(l *slog.Logger) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Warn,
		Output: io.Discard,
	})
	il.RegisterSink(hclogSink{l})
	return il
}

func (s hclogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	var lv slog.Level
	switch {
	case level >= hclog.Error:
		lv = slog.LevelError
	case level == hclog.Warn:
		lv = slog.LevelWarn
	default:
		return
	}
	s.log.Log(context.Background(), lv, msg, append(args, "component", name)...)
}
