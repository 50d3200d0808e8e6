package cluster

// Cause says who made a host's last up/down decision.
type Cause uint8

const (
	CauseNone   Cause = iota // never changed since the host was added
	CauseAdmin               // HOST-UP / HOST-DOWN (doveadm, the admin socket, poolmon)
	CauseHealth              // usher's own health checks
	causeCount
)

var causeNames = [...]string{"", "admin", "health"}

// String is "admin", "health" or "" (no decision yet).
func (c Cause) String() string {
	if c < causeCount {
		return causeNames[c]
	}
	return "cause?"
}

// applyUpDown is the state model of docs/cluster.md "Health checks and
// drain". Admin decisions win over the checks:
//
//   - HOST-DOWN by an admin keeps the host down whatever the checks say;
//     only HOST-UP by an admin brings it back.
//   - HOST-UP by an admin while the checks say down holds the host up
//     (HoldUp) until the checks have passed again: only a new failure after
//     that puts it down.
//   - The checks put a host down only when it is up and not held up, and up
//     only when they were what put it down.
//
// LastUpDown changes only when Down does, as in Dovecot.
func (h *hostRec) applyUpDown(op Op, now int64) {
	set := func(down bool, cause Cause) {
		if h.Down != down {
			h.Down, h.LastUpDown = down, now
		}
		h.Cause = cause
	}
	switch op {
	case OpHostDown:
		set(true, CauseAdmin)
		h.HoldUp = false
	case OpHostUp:
		set(false, CauseAdmin)
		h.HoldUp = h.HealthDown
	case OpHealthDown:
		h.HealthDown = true
		if !h.Down && !h.HoldUp {
			set(true, CauseHealth)
		}
	case OpHealthUp:
		h.HealthDown, h.HoldUp = false, false
		if h.Down && h.Cause == CauseHealth {
			set(false, CauseHealth)
		}
	}
}
