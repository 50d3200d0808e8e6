package cluster

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestKickByIndexNotClock: whether a kick entry is acted on depends on its
// index against the last one stored at start, not on the local clock: a
// follower whose clock runs minutes ahead of the leader's must still kick.
func TestKickByIndexNotClock(t *testing.T) {
	var got []Kick
	f := &fsm{state: NewState(), log: slog.New(slog.DiscardHandler), kickAfter: 5,
		onKick: func(k Kick) { got = append(got, k) }}
	kick := func(idx uint64, user string, appended time.Time) {
		t.Helper()
		b, err := Command{Op: OpKick, User: user, Now: 1, VhostCount: -1}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: idx, Data: b, AppendedAt: appended}); r.(Result).Code != OK {
			t.Fatalf("apply %d: %v", idx, r)
		}
	}
	now := time.Now()
	kick(4, "replayed", now)                   // at or below kickAfter: a replay
	kick(5, "replayed", now)                   //
	kick(6, "skewed", now.Add(-2*time.Minute)) // appended "two minutes ago" by this clock
	kick(7, "ahead", now.Add(2*time.Minute))   // appended "in the future"
	kick(8, "unstamped", time.Time{})          // no timestamp at all
	var users []string
	for _, k := range got {
		users = append(users, k.User)
	}
	want := []string{"skewed", "ahead", "unstamped"}
	if !slices.Equal(users, want) {
		t.Fatalf("kicked %q, want %q", users, want)
	}
}
