package router

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestImportUser(t *testing.T) {
	r, k, c := newRouter(t, b1, b2)
	ctx := context.Background()
	h, _ := r.Hash("alice")
	ts := c.now().Unix() - 60
	route := func() string {
		ip, err := r.Route(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return ip.String()
	}
	l, _ := r.LookupUser("alice", "")
	other := b1
	if l.Hashed == b1 {
		other = b2
	}
	for _, step := range []struct {
		ts   int64
		want ImportResult
	}{
		{ts, Imported},       // away from its ring position
		{ts, Unchanged},      // the same again
		{ts - 30, Unchanged}, // an older view of the same
	} {
		if got, err := r.ImportUser(ctx, h, other, step.ts); err != nil || got != step.want {
			t.Fatalf("import to %s at %d: %v %v, want %v", other, step.ts, got, err, step.want)
		}
	}
	if l, _ := r.LookupUser("alice", ""); l.Current != other || l.Expire != ts+900 {
		t.Fatalf("after import: %+v, want %s expiring %d", l, other, ts+900)
	}
	if got := route(); got != other.String() {
		t.Fatalf("alice routed to %s, imported on %s", got, other)
	}
	// Routing refreshed the mapping (a refresh still pending, not yet in the log): an import
	// of an older mapping elsewhere keeps usher's.
	if got, err := r.ImportUser(ctx, h, l.Hashed, ts); err != nil || got != KeptNewer {
		t.Fatalf("older import elsewhere: %v %v", got, err)
	}
	// A newer one elsewhere wins, without kicking anybody.
	c.add(time.Minute)
	if got, err := r.ImportUser(ctx, h, l.Hashed, c.now().Unix()); err != nil || got != Imported {
		t.Fatalf("newer import elsewhere: %v %v", got, err)
	}
	if got := route(); got != l.Hashed.String() {
		t.Fatalf("alice routed to %s after the newer import to %s", got, l.Hashed)
	}
	if len(k.kicked()) != 0 {
		t.Fatalf("an import kicked %v", k.kicked())
	}
	if _, err := r.ImportUser(ctx, h, b3, ts); !errors.Is(err, ErrNotFound) {
		t.Fatalf("import to an unknown host: %v", err)
	}
}
