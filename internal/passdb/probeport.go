package passdb

// Port tells where every login of service goes by this passdb's own answers, whoever logs
// in: known is true when every answer says the same, port being that port= or 0 when none
// names one (the login then goes to usher's backend_*_port). The health checks probe there
// (docs/cluster.md "Which port"). Answers are certain from a static passdb, and from a
// passwd-file whose path does not depend on the user (it may on %s) through all its
// entries. A user-dependent path, entries that differ, ssl= or starttls (the probe follows
// backend_ssl, not the answer) or an unreadable file make known false. No passdb (nil)
// proxies every login to backend_*_port: known, 0.
func (db *DB) Port(service string) (port int, known bool) {
	if db == nil {
		return 0, true
	}
	first := true
	agree := func(fields []string) bool {
		p, ok := fieldPort(fields)
		if !ok || (!first && p != port) {
			return false
		}
		port, first = p, false
		return true
	}
	for _, src := range db.dbs {
		if src.driver == "static" {
			if !agree(src.fields) {
				return 0, false
			}
			continue
		}
		path := expand(src.path, vars{user: "a@a", service: service})
		if path != expand(src.path, vars{user: "b@b", service: service}) {
			return 0, false
		}
		f := db.file(path)
		if _, _, _, err := f.lookup(""); err != nil {
			return 0, false
		}
		f.mu.Lock()
		ok := true
		for _, e := range f.users {
			ok = ok && agree(e.fields)
		}
		f.mu.Unlock()
		if !ok {
			return 0, false
		}
	}
	return port, true
}

// fieldPort is the port= of a reply's fields (0: none); ok is false when the fields do not
// parse or ask for TLS, which a probe speaking backend_ssl may not match.
func fieldPort(fields []string) (port int, ok bool) {
	f, err := ParseFields(fields)
	if err != nil || f.TLS != TLSUnset {
		return 0, false
	}
	return f.Port, true
}
