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

	// applied is the index of the last entry applied; appliedCh is closed
	// and replaced each time it moves, waking waitApplied.
	applied   uint64
	appliedCh chan struct{}

	// onKick observes OpKick entries above kickAfter, the last index stored
	// when the node started: entries up to it are replays of a previous run.
	// Only the index decides, never the local clock (a follower whose clock
	// is off would drop live kicks) and never the entry's age: a director
	// catching up from far behind receives a snapshot, which carries no
	// kicks, and a late kick from a short outage only ends sessions that
	// were on the wrong backend anyway.
	onKick    func(Kick)
	kickAfter uint64
}

func (f *fsm) Apply(l *raft.Log) any {
	var c Command
	var res Result
	if err := c.UnmarshalBinary(l.Data); err != nil {
		// Every node decodes the same bytes the same way, so skipping keeps
		// replicas identical; it can only mean a newer writer or corruption.
		f.log.Error("cluster: undecodable log entry skipped", "index", l.Index, "err", err)
		res = Result{Code: Invalid}
	}
	f.mu.Lock()
	if res.Code == OK {
		res = f.state.Apply(c)
	}
	f.setApplied(l.Index)
	f.mu.Unlock()
	if c.Op == OpKick && f.onKick != nil && l.Index > f.kickAfter {
		f.onKick(Kick{Tag: c.Tag, Hash: c.Hash, User: c.User, Reason: c.Text})
	}
	return res
}

// setApplied runs with mu held.
func (f *fsm) setApplied(idx uint64) {
	if idx <= f.applied {
		return
	}
	f.applied = idx
	if f.appliedCh != nil {
		close(f.appliedCh)
		f.appliedCh = nil
	}
}

// waitApplied returns once the entry at idx is applied here.
func (f *fsm) waitApplied(ctx context.Context, idx uint64) error {
	for {
		f.mu.Lock()
		if f.applied >= idx {
			f.mu.Unlock()
			return nil
		}
		if f.appliedCh == nil {
			f.appliedCh = make(chan struct{})
		}
		ch := f.appliedCh
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
	// raft sets the applied index to the snapshot's after Restore; entries
	// applied next are above it, so waitApplied needs no index here.
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
