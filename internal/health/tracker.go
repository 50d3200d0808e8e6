package health

// tracker turns single check results into a verdict with hysteresis: the
// verdict flips only after `fall` failures (to down) or `rise` passes (to
// up) in a row, so a flapping backend cannot flip the state faster than
// that. It is pure and table-tested.
//
// Failures count towards down only once a check has passed (passed): a
// host whose probe has never passed since this checker started probing
// that port is more likely probed on the wrong port (usher's
// backend_*_port guessed, the passdb's port= sends logins elsewhere) than
// down, and taking every backend down for usher's own guess would stop all
// logins. Such a host is left as Dovecot's director leaves every host (no
// checks), and the checker warns.
type tracker struct {
	down   bool // current verdict
	streak int  // consecutive results contradicting the verdict
	passed bool // a check has passed on port
	port   int  // the port the results are for; a new port starts over
	warned bool // the never-passed warning was logged for port
}

// observe records one result and reports whether the verdict flipped.
func (t *tracker) observe(ok bool, fall, rise int) bool {
	t.passed = t.passed || ok
	if ok != t.down || !t.passed { // agrees with the verdict, or proves nothing yet
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

// probing sets the port the next results are for; a different port than
// before forgets the streak and whether a check passed.
func (t *tracker) probing(port int) {
	if port != t.port {
		t.port, t.streak, t.passed, t.warned = port, 0, false, false
	}
}
