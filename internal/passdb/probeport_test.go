package passdb

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/usher-mail/usher/internal/config"
)

func TestPort(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("users.imap", "a:{PLAIN}x::::::proxy=y port=21143\nb:{PLAIN}x::::::proxy=y port=21143\n")
	write("users.pop3", "a:{PLAIN}x::::::proxy=y port=21110\nb:{PLAIN}x::::::proxy=y\n")
	write("users.lmtp", "a:{PLAIN}x::::::proxy=y port=21024\nb:{PLAIN}x::::::proxy=y port=21025\n")
	noport := write("noport", "a:{PLAIN}x::::::proxy=y\n")
	mixed := write("mixed", "a:{PLAIN}x::::::proxy=y port=21143\n")
	file := func(path string) config.Passdb { return config.Passdb{Driver: "passwd-file", Args: path} }
	static := func(args string) config.Passdb { return config.Passdb{Driver: "static", Args: args} }
	tests := []struct {
		name    string
		passdbs []config.Passdb
		service string
		want    int
		known   bool
	}{
		{"per-service file, one port", []config.Passdb{file(dir + "/users.%s")}, "imap", 21143, true},
		{"an entry without port=", []config.Passdb{file(dir + "/users.%s")}, "pop3", 0, false},
		{"entries with two ports", []config.Passdb{file(dir + "/users.%s")}, "lmtp", 0, false},
		{"no such file", []config.Passdb{file(dir + "/users.%s")}, "sieve", 0, false},
		{"a path depending on the user", []config.Passdb{file(dir + "/%d/users")}, "imap", 0, false},
		{"static port=", []config.Passdb{static("nopassword=y proxy=y port=993")}, "imap", 993, true},
		{"static without port=", []config.Passdb{static("nopassword=y proxy=y")}, "imap", 0, true},
		{"two passdbs agreeing", []config.Passdb{file(mixed), static("proxy=y port=21143 password=p")}, "imap", 21143, true},
		{"no entry names a port", []config.Passdb{file(noport)}, "imap", 0, true},
		{"ssl=yes without port=", []config.Passdb{static("nopassword=y proxy=y ssl=yes")}, "imap", 0, false},
		{"ssl=yes with port=", []config.Passdb{static("nopassword=y proxy=y ssl=yes port=993")}, "imap", 0, false},
		{"two passdbs disagreeing", []config.Passdb{file(mixed), static("proxy=y port=143 password=p")}, "imap", 0, false},
	}
	for _, tc := range tests {
		db, err := New(tc.passdbs, "")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got, known := db.Port(tc.service); got != tc.want || known != tc.known {
			t.Errorf("%s: Port(%s) = %d, %v, want %d, %v", tc.name, tc.service, got, known, tc.want, tc.known)
		}
	}
	if port, known := (*DB)(nil).Port("imap"); port != 0 || !known {
		t.Error("without a passdb every login goes to backend_*_port")
	}
}
