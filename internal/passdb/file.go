package passdb

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"sync"
	"time"
)

// entry is one passwd-file line: the stored password and its extra fields.
type entry struct {
	password   string
	nopassword bool
	// fields are the passdb reply's extra fields ("key=value" or a bare "key"), without
	// nopassword (the file's business) and userdb_* (a userdb's, not a login's).
	fields []string
}

// userFile is a passwd-file, re-read when its size or modification time changes (as Dovecot
// does), so an administrator's edit takes effect without a reload.
type userFile struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	loaded  bool
	users   map[string]entry
	dummy   string // a stored password of the file's most common scheme, see decoy
}

// lookup returns the user's entry; err is set when the file cannot be read. decoy is what an
// unknown user's password is checked against, so that a login for a name not in the file
// costs what one for a name in it costs (the answer does not tell which names exist).
func (f *userFile) lookup(user string) (e entry, found bool, decoy string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil {
		return entry{}, false, "", err
	}
	if !f.loaded || !st.ModTime().Equal(f.modTime) || st.Size() != f.size {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return entry{}, false, "", err
		}
		f.users, f.modTime, f.size, f.loaded = parseUsers(data), st.ModTime(), st.Size(), true
		f.dummy = commonestPassword(f.users)
	}
	e, found = f.users[user]
	return e, found, f.dummy, nil
}

// commonestPassword returns a stored password of the scheme most entries use (its {SCHEME}
// prefix, or none), the smallest such value so the choice does not depend on map order.
// Another user's hash is a decoy of exactly that scheme's cost (same rounds, cost, memory);
// the result of checking against it is always discarded.
func commonestPassword(users map[string]entry) string {
	count := map[string]int{}
	pick := map[string]string{}
	for _, e := range users {
		if e.password == "" || e.nopassword {
			continue
		}
		scheme, _ := SplitScheme(e.password, "")
		count[scheme]++
		if p, ok := pick[scheme]; !ok || e.password < p {
			pick[scheme] = e.password
		}
	}
	best, bestN := "", 0
	for scheme, n := range count {
		if n > bestN || (n == bestN && scheme < best) {
			best, bestN = scheme, n
		}
	}
	return pick[best]
}

// parseUsers reads passwd-file lines "user:password:uid:gid:gecos:home:shell:extra fields".
// Blank lines and lines starting with '#' are skipped; the first line of a user wins, as in
// Dovecot. Malformed lines are skipped rather than failing the whole file.
func parseUsers(data []byte) map[string]entry {
	users := map[string]entry{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.SplitN(line, ":", 8)
		user := fields[0]
		if user == "" {
			continue
		}
		if _, dup := users[user]; dup {
			continue
		}
		var e entry
		if len(fields) > 1 {
			e.password = fields[1]
		}
		if len(fields) == 8 {
			for _, f := range strings.Fields(fields[7]) {
				k, v, _ := strings.Cut(f, "=")
				switch {
				case k == "nopassword":
					e.nopassword = v != "n" && v != "no"
				case !strings.HasPrefix(k, "userdb_"):
					e.fields = append(e.fields, f)
				}
			}
		}
		users[user] = e
	}
	return users
}
