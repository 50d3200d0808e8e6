package health

// tracker turns single check results into a verdict with hysteresis: the
// verdict flips only after `fall` failures (to down) or `rise` passes (to
// up) in a row, so a flapping backend cannot flip the state faster than
// that. It is pure and table-tested.
type tracker struct {
	down   bool // current verdict
	streak int  // consecutive results contradicting the verdict
}

// observe records one result and reports whether the verdict flipped.
func (t *tracker) observe(ok bool, fall, rise int) bool {
	if ok != t.down { // agrees with the verdict
		t.streak = 0
		return false
	}
	t.streak++
	need := fall
	if t.down {
		need = rise
	}
	if t.streak < max(need, 1) {
		return false
	}
	t.down, t.streak = !t.down, 0
	return true
}
