package passdb

// Port returns the backend port every login of service goes to by this passdb's own
// answers, or 0 when the answers do not name one port: the health checks probe there
// (usher's backend_*_port being only the fallback for a reply without port=). It is one
// port only when every passdb says it whoever logs in: a static passdb's port=, or a
// passwd-file whose path does not depend on the user (it may on %s) and whose every
// entry has the same port=. Anything else (a user-dependent path, an entry without
// port= or with another, an unreadable file) is 0.
func (db *DB) Port(service string) int {
	if db == nil {
		return 0
	}
	port := 0
	agree := func(p int) bool {
		if p == 0 || (port != 0 && p != port) {
			return false
		}
		port = p
		return true
	}
	for _, src := range db.dbs {
		if src.driver == "static" {
			if !agree(fieldPort(src.fields)) {
				return 0
			}
			continue
		}
		path := expand(src.path, vars{user: "a@a", service: service})
		if path != expand(src.path, vars{user: "b@b", service: service}) {
			return 0
		}
		f := db.file(path)
		if _, _, _, err := f.lookup(""); err != nil {
			return 0
		}
		f.mu.Lock()
		ok := len(f.users) > 0
		for _, e := range f.users {
			ok = ok && agree(fieldPort(e.fields))
		}
		f.mu.Unlock()
		if !ok {
			return 0
		}
	}
	return port
}

// fieldPort is the port= of a reply's fields, 0 when absent or invalid.
func fieldPort(fields []string) int {
	f, err := ParseFields(fields)
	if err != nil {
		return 0
	}
	return f.Port
}
