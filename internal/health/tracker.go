package health

// tracker turns single check results into a verdict with hysteresis: the
// verdict flips only after `fall` failures (to down) or `rise` passes (to
// up) in a row, so a flapping backend cannot flip the state faster than
// that. It is pure and table-tested.
//
// Failures count towards down only once the port is known to serve logins
// (armed): a login went there or the passdb sends every login there, or a
// check has passed on it. A host whose probe has never passed on a port
// usher guessed (backend_*_port, while the passdb may answer another
// port=) is more likely probed on the wrong port than down, and taking
// every backend down for usher's own guess would stop all logins. Such a
// host is left as Dovecot's director leaves every host (no checks), and
// the checker warns.
type tracker struct {
	down   bool // current verdict
	streak int  // consecutive results contradicting the verdict
	armed  bool // failures count: port is known, or a check passed on it
	port   int  // the port the results are for; a new port starts over
	warned bool // the never-passed warning was logged for port
}

// observe records one result and reports whether the verdict flipped.
func (t *tracker) observe(ok bool, fall, rise int) bool {
	t.armed = t.armed || ok
	if ok != t.down || !t.armed { // agrees with the verdict, or proves nothing yet
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

// probing sets the port the next results are for, and whether it is known
// to be where logins go; a different port than before forgets the streak
// and whether a check passed.
func (t *tracker) probing(port int, known bool) {
	if port != t.port {
		t.port, t.streak, t.armed, t.warned = port, 0, false, false
	}
	t.armed = t.armed || known
}
