package cluster

import (
	"bytes"
	"testing"
)

// hostState is the part of a host the up/down model decides.
type hostState struct {
	down, healthDown, holdUp bool
	cause                    Cause
	lastUpDown               int64
}

func stateOf(t *testing.T, s *State) hostState {
	t.Helper()
	h, ok := s.Host(ip1)
	if !ok {
		t.Fatal("host gone")
	}
	return hostState{h.Down, h.HealthDown, h.HoldUp, h.Cause, h.LastUpDown}
}

// TestHealthStateModel walks the state model of docs/cluster.md: admin
// decisions win, an admin's up holds until the checks fail anew.
func TestHealthStateModel(t *testing.T) {
	up, down := OpHostUp, OpHostDown
	hUp, hDown := OpHealthUp, OpHealthDown
	tests := []struct {
		name string
		ops  []Op // applied at Now = 10, 20, 30, ...
		want hostState
	}{
		{"fresh host", nil, hostState{}},
		{"checks fail", []Op{hDown}, hostState{down: true, healthDown: true, cause: CauseHealth, lastUpDown: 10}},
		{"checks fail twice: no second change", []Op{hDown, hDown}, hostState{down: true, healthDown: true, cause: CauseHealth, lastUpDown: 10}},
		{"checks recover", []Op{hDown, hUp}, hostState{cause: CauseHealth, lastUpDown: 20}},
		{"checks pass on an up host: nothing changes", []Op{hUp}, hostState{}},
		{"admin down survives passing checks", []Op{down, hUp, hUp}, hostState{down: true, cause: CauseAdmin, lastUpDown: 10}},
		{"admin down over health down takes the cause", []Op{hDown, down, hUp}, hostState{down: true, cause: CauseAdmin, lastUpDown: 10}},
		{"admin down then failing checks stay admin", []Op{down, hDown}, hostState{down: true, healthDown: true, cause: CauseAdmin, lastUpDown: 10}},
		{"admin up while checks fail holds the host up", []Op{hDown, up, hDown, hDown},
			hostState{healthDown: true, holdUp: true, cause: CauseAdmin, lastUpDown: 20}},
		{"after a hold, passing then failing checks put it down", []Op{hDown, up, hUp, hDown},
			hostState{down: true, healthDown: true, cause: CauseHealth, lastUpDown: 40}},
		{"admin up of a healthy host holds nothing", []Op{up, hDown}, hostState{down: true, healthDown: true, cause: CauseHealth, lastUpDown: 20}},
		{"admin down clears a hold", []Op{hDown, up, down, hUp}, hostState{down: true, cause: CauseAdmin, lastUpDown: 30}},
		{"admin up after admin down", []Op{down, up}, hostState{cause: CauseAdmin, lastUpDown: 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base(t)
			for i, op := range tc.ops {
				if r := s.Apply(Command{Op: op, IP: ip1, Now: int64(10 * (i + 1)), VhostCount: -1}); r.Code != OK {
					t.Fatalf("%v: %v", op, r.Code)
				}
			}
			if got := stateOf(t, s); got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			// The health state survives a snapshot.
			b, _ := s.MarshalBinary()
			r := NewState()
			if err := r.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if got := stateOf(t, r); got != tc.want {
				t.Errorf("after snapshot %+v", got)
			}
		})
	}
	if r := NewState().Apply(Command{Op: OpHealthDown, IP: ipNo}); r.Code != NotFound {
		t.Errorf("health-down of an unknown host: %v", r.Code)
	}
}

// TestSnapshotV1 reads a version 1 snapshot (before health state) and
// refuses health flags in it.
func TestSnapshotV1(t *testing.T) {
	s := base(t)
	s.Apply(Command{Op: OpHostDown, IP: ip1, Now: 5})
	b, _ := s.MarshalBinary()
	if b[4] != snapshotVersion {
		t.Fatalf("version %d", b[4])
	}
	// Version 3 without the host generation (one byte here) and with the cause bits cleared
	// is exactly version 1.
	v1 := append(append([]byte{}, b[:6]...), b[7:]...)
	v1[4] = snapshotVersion1
	i := bytes.Index(v1, []byte{1 | byte(CauseAdmin)<<hostCauseShift, 10}) // flags, then LastUpDown 5 as varint
	if i < 0 {
		t.Fatalf("host flags not found in %x", v1)
	}
	v1[i] = hostDown
	r := NewState()
	if err := r.UnmarshalBinary(v1); err != nil {
		t.Fatal(err)
	}
	if h, _ := r.Host(ip1); !h.Down || h.Cause != CauseNone || h.LastUpDown != 5 {
		t.Errorf("v1 host %+v", h)
	}
	v1[i] = hostDown | hostHealthDown
	if err := r.UnmarshalBinary(v1); err == nil {
		t.Error("v1 snapshot with health flags decoded")
	}
	bad := append([]byte{}, b...)
	bad[i+1] = 3 << hostCauseShift // the same flags byte in version 3
	if err := r.UnmarshalBinary(bad); err == nil {
		t.Error("unknown cause decoded")
	}
}
