package passdb

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/usher-mail/usher/internal/config"
)

// The built-in drivers answer a login with every extra field of the entry (or a static
// passdb's args), not only forward_*: what the login pipeline routes by.
func TestAuthenticateReturnsFields(t *testing.T) {
	dir := t.TempDir()
	writeUsers(t, dir, "users.imap",
		"alice:{PLAIN}pass::::::proxy=y port=10143 host=127.0.0.12 userdb_home=/x forward_a=b\n"+
			"bob*admin:{PLAIN}adminpass::::::proxy=y user=bob master=admin\n"+
			"carol:{PLAIN}pass::::::nologin reason=Moved. nopassword=n\n")
	db, err := New([]config.Passdb{
		{Driver: "passwd-file", Args: "scheme=PLAIN " + filepath.Join(dir, "users.%s")},
		{Driver: "static", Args: "password=shared proxy=y port=20143"},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  Request
		want Reply
	}{
		{"right password", Request{Service: "imap", User: "alice", Pass: "pass", Mech: "PLAIN"},
			Reply{OK: true, Fields: []string{"proxy=y", "port=10143", "host=127.0.0.12", "forward_a=b"}}},
		{"wrong password", Request{Service: "imap", User: "alice", Pass: "nope", Mech: "PLAIN"}, Reply{}},
		{"user= rewrites", Request{Service: "imap", User: "bob*admin", Pass: "adminpass", Mech: "PLAIN"},
			Reply{OK: true, User: "bob", Fields: []string{"proxy=y", "user=bob", "master=admin"}}},
		{"the static passdb after it", Request{Service: "imap", User: "alice", Pass: "shared", Mech: "LOGIN"},
			Reply{OK: true, Fields: []string{"proxy=y", "port=20143"}}},
		{"lookup", Request{Service: "imap", User: "carol"},
			Reply{OK: true, Fields: []string{"nologin", "reason=Moved."}}},
		{"lookup falls to static", Request{Service: "imap", User: "nobody"},
			Reply{OK: true, Fields: []string{"proxy=y", "port=20143"}}},
	} {
		got, err := db.Authenticate(ctx, tc.req)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	// %s picks the file: no users.pop3, and the static passdb refuses this password
	got, err := db.Authenticate(ctx, Request{Service: "pop3", User: "alice", Pass: "pass", Mech: "PLAIN"})
	if !got.Temp || err == nil {
		t.Errorf("unreadable file: %+v, %v; want a temporary failure", got, err)
	}
	got, err = db.Authenticate(ctx, Request{Service: "pop3", User: "alice", Pass: "shared", Mech: "PLAIN"})
	if !got.OK || err != nil {
		t.Errorf("another passdb accepts after an unreadable file: %+v, %v", got, err)
	}
}

func TestFormatUser(t *testing.T) {
	if got := FormatUser("%Lu", "Bob@Example.com"); got != "bob@example.com" {
		t.Errorf("FormatUser(%%Lu) = %q", got)
	}
	if got := FormatUser("%Ln", "Bob@Example.com"); got != "bob" {
		t.Errorf("FormatUser(%%Ln) = %q", got)
	}
	if got := FormatUser("", "Bob"); got != "Bob" {
		t.Errorf("FormatUser(\"\") = %q", got)
	}
}

func TestChecksPasswords(t *testing.T) {
	for _, c := range []struct {
		passdbs []config.Passdb
		want    bool
	}{
		{[]config.Passdb{{Driver: "static", Args: "nopassword=y proxy=y"}}, false},
		{[]config.Passdb{{Driver: "static", Args: "password=secret proxy=y"}}, true},
		{[]config.Passdb{{Driver: "static", Args: "nopassword=y"}, {Driver: "passwd-file", Args: "/nonexistent"}}, true},
	} {
		db, err := New(c.passdbs, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := db.ChecksPasswords(); got != c.want {
			t.Errorf("%v: ChecksPasswords %v, want %v", c.passdbs, got, c.want)
		}
	}
}
