package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// SQLUser is one row of an SQLite passdb: Name is what the login gives, Password is stored
// as written ("{PLAIN}x", "{SHA512-CRYPT}$6$...": `doveadm pw` output), Fields are the extra
// fields the passdb returns (a column each; an absent one is NULL, which Dovecot skips).
type SQLUser struct {
	Name, Password string
	Fields         map[string]string
}

// sqlFields are the columns a row may fill: user (a rewrite of the name) and the fields a
// director's passdb returns.
var sqlFields = []string{"user", "proxy", "proxy_maybe", "host", "port", "ssl", "starttls", "destuser",
	"nologin", "reason", "master", "pass", "proxy_mech", "proxy_timeout", "director_tag", "nodelay"}

// SQLitePassdb writes users to an SQLite database (with Python's sqlite3, so the test needs
// no SQLite client) and returns a passdb { driver = sql } section reading it through
// Debian's dovecot-sqlite, for Backend.AddConfig, and the database's path. Every row's user
// column is the login name unless Fields has a user rewrite.
func SQLitePassdb(t testing.TB, users []SQLUser) (section, dbPath string) {
	t.Helper()
	if _, err := os.Stat("/usr/lib/dovecot/modules/auth/libdriver_sqlite.so"); err != nil {
		if os.Getenv("USHER_REQUIRE_DOVECOT") != "" {
			t.Fatal("testenv: Dovecot's SQLite driver is missing (apt-get install dovecot-sqlite)")
		}
		t.Skip("testenv: Dovecot's SQLite driver is missing (dovecot-sqlite)")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "users.db")
	var py strings.Builder
	cols := append([]string{"userid", "password"}, sqlFields...)
	fmt.Fprintf(&py, "import sqlite3\nc = sqlite3.connect(%q)\n", db)
	fmt.Fprintf(&py, "c.execute('CREATE TABLE users (%s TEXT)')\n", strings.Join(cols, " TEXT, "))
	for _, u := range users {
		vals := []string{pyString(u.Name), pyString(u.Password)}
		for _, f := range sqlFields {
			v, ok := u.Fields[f]
			switch {
			case ok:
				vals = append(vals, pyString(v))
			case f == "user":
				vals = append(vals, pyString(u.Name))
			default:
				vals = append(vals, "None")
			}
		}
		for k := range u.Fields {
			if !slices.Contains(sqlFields, k) {
				t.Fatalf("testenv: SQLitePassdb has no column for field %q", k)
			}
		}
		fmt.Fprintf(&py, "c.execute('INSERT INTO users VALUES (%s)', (%s,))\n",
			strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", "), strings.Join(vals, ", "))
	}
	py.WriteString("c.commit()\n")
	if out, err := exec.Command("python3", "-c", py.String()).CombinedOutput(); err != nil {
		t.Fatalf("testenv: writing the SQLite passdb: %v\n%s", err, out)
	}
	// Dovecot's auth worker runs as an unprivileged user: the file and its directory must be
	// readable by it.
	for _, p := range []string{dir, db} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "sql.conf")
	sql := fmt.Sprintf("driver = sqlite\nconnect = %s\ndefault_pass_scheme = PLAIN\n"+
		"password_query = SELECT %s, password FROM users WHERE userid = '%%u'\n", db, strings.Join(sqlFields, ", "))
	if err := os.WriteFile(conf, []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("passdb {\n  driver = sql\n  args = %s\n}\n", conf), db
}

// pyString is s as a Python string literal.
func pyString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\x00", `\x00`).Replace(s) + "'"
}
