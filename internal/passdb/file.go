package passdb

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"sync"
	"time"
)

// entry is one passwd-file line: the stored password and the extra fields usher acts on.
type entry struct {
	password   string
	nopassword bool
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
}

// lookup returns the user's entry; err is set when the file cannot be read.
func (f *userFile) lookup(user string) (entry, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil {
		return entry{}, false, err
	}
	if !f.loaded || !st.ModTime().Equal(f.modTime) || st.Size() != f.size {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return entry{}, false, err
		}
		f.users, f.modTime, f.size, f.loaded = parseUsers(data), st.ModTime(), st.Size(), true
	}
	e, ok := f.users[user]
	return e, ok, nil
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
				if k == "nopassword" && v != "n" && v != "no" {
					e.nopassword = true
				}
			}
		}
		users[user] = e
	}
	return users
}
