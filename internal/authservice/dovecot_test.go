package authservice

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/passdb"
	"github.com/usher-mail/usher/internal/testenv"
)

// A real Dovecot 2.3 auth service whose passdb is SQL (Debian's dovecot-sqlite), asked as
// usher asks it: over a unix socket and a TCP listener for logins, over a userdb socket
// and TCP listener for LMTP's lookups without a password, all named as docs/config.md's
// deployment example names them.
// Passwords stored as PLAIN and SHA512-CRYPT, a user rewrite, the proxy fields passed on raw,
// a wrong password and an unknown user refused (not temporary), and a stopped service a
// temporary failure until it is back.
func TestDovecotSQLAuthService(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 1, Users: 1})
	b := cl.Backends()[0]
	crypt, err := exec.Command("doveadm", "pw", "-s", "SHA512-CRYPT", "-p", "crypt secret").Output()
	if err != nil {
		t.Fatal(err)
	}
	sql, db := testenv.SQLitePassdb(t, []testenv.SQLUser{
		{Name: "plain1", Password: "{PLAIN}secret", Fields: map[string]string{"proxy": "y", "port": "21143", "host": "127.0.0.5"}},
		{Name: "crypt1", Password: strings.TrimSpace(string(crypt)), Fields: map[string]string{"proxy": "y", "ssl": "any-cert"}},
		{Name: "alias1", Password: "{PLAIN}secret", Fields: map[string]string{"user": "plain1", "proxy": "y"}},
	})
	clientPort, masterPort := testenv.FreePort(t, b.IP), testenv.FreePort(t, b.IP)
	if err := b.AddConfig(sql + fmt.Sprintf(`auth_failure_delay = 0
service auth {
  unix_listener usher-client {
    mode = 0660
  }
  unix_listener usher-userdb {
    mode = 0660
  }
  inet_listener usher-client {
    address = %[1]s
    port = %[2]d
  }
  inet_listener usher-userdb {
    address = %[1]s
    port = %[3]d
  }
}
`, b.IP, clientPort, masterPort)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	unix := New(config.Endpoint{Network: "unix", Addr: filepath.Join(b.RunDir, "usher-client")}, config.Endpoint{Network: "unix", Addr: filepath.Join(b.RunDir, "usher-userdb")})
	defer unix.Close()
	tcp := New(config.Endpoint{Network: "tcp", Addr: b.HostPort(clientPort)}, config.Endpoint{Network: "tcp", Addr: b.HostPort(masterPort)})
	defer tcp.Close()

	login := func(user, pass string) passdb.Request {
		return passdb.Request{Service: "imap", User: user, Pass: pass, Mech: "PLAIN", Secured: true, Session: "sess1",
			Local: netip.MustParseAddrPort("127.0.0.1:143"), Remote: netip.MustParseAddrPort("127.0.0.9:40000")}
	}
	lookup := func(user string) passdb.Request {
		return passdb.Request{Service: "lmtp", User: user, Local: netip.MustParseAddrPort("127.0.0.1:24")}
	}
	for _, s := range []*Service{unix, tcp} {
		name := s.Client().Network
		check := func(what string, req passdb.Request, want passdb.Reply) {
			t.Helper()
			got, err := s.Authenticate(ctx, req)
			if err != nil || !equal(got, want) {
				t.Errorf("%s %s: %+v %v, want %+v", name, what, got, err, want)
			}
		}
		check("PLAIN", login("plain1", "secret"), passdb.Reply{OK: true, User: "plain1", Fields: []string{"proxy", "host=127.0.0.5", "port=21143"}})
		check("SHA512-CRYPT", login("crypt1", "crypt secret"), passdb.Reply{OK: true, User: "crypt1", Fields: []string{"proxy", "ssl=any-cert"}})
		check("rewrite", login("alias1", "secret"), passdb.Reply{OK: true, User: "plain1", Fields: []string{"proxy", "original_user=alias1"}})
		check("wrong password", login("plain1", "wrong"), passdb.Reply{User: "plain1"})
		check("unknown user", login("nosuch", "secret"), passdb.Reply{User: "nosuch"})
		// An authorization identity reaches the service, which refuses it without a master
		// passdb, as it would for Dovecot's own login processes.
		asOther := login("plain1", "secret")
		asOther.Authz = "crypt1"
		if got, err := s.Authenticate(ctx, asOther); err != nil || got.OK || got.Temp {
			t.Errorf("%s authz crypt1 by plain1: %+v %v, want refused", name, got, err)
		}
		check("lookup", lookup("plain1"), passdb.Reply{OK: true, User: "plain1", Fields: []string{"proxy=y", "host=127.0.0.5", "port=21143"}})
		check("lookup rewrite", lookup("alias1"), passdb.Reply{OK: true, User: "plain1", Fields: []string{"proxy=y"}})
		check("lookup unknown", lookup("nosuch"), passdb.Reply{})
		// twice: the second lookup reuses the idle auth-master connection
		check("lookup again", lookup("crypt1"), passdb.Reply{OK: true, User: "crypt1", Fields: []string{"proxy=y", "ssl=any-cert"}})
	}

	// The service stops: a temporary failure, never a wrong password; back when it is.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, req := range []passdb.Request{login("plain1", "secret"), lookup("plain1")} {
		if r, err := unix.Authenticate(ctx, req); !errors.Is(err, ErrUnavailable) || !r.Temp || r.OK {
			t.Errorf("%q with the service stopped: %+v %v", req.Mech, r, err)
		}
	}
	// Back, offering LOGIN only, and without its database: the passdb fails internally,
	// which the service says with FAIL code=temp_fail (logins) or FAIL (lookups).
	if err := os.Rename(db, db+".away"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddConfig("auth_mechanisms = login\n"); err != nil {
		t.Fatal(err)
	}
	for _, req := range []passdb.Request{login("plain1", "secret"), lookup("plain1")} {
		for { // a failed connect is the answer for a second
			r, err := unix.Authenticate(ctx, req)
			if errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err != nil || !r.Temp || r.OK {
				t.Errorf("%q without the database: %+v %v", req.Mech, r, err)
			}
			break
		}
	}
	// SQLite made an empty database there, which the service keeps open: put the real one
	// back and restart it.
	if err := os.Rename(db+".away", db); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	for _, req := range []passdb.Request{login("plain1", "secret"), lookup("plain1")} {
		// a failed connect is the answer for a second, so poll
		for {
			r, err := unix.Authenticate(ctx, req)
			if err == nil && r.OK {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%q after the service restarted: %+v %v", req.Mech, r, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if c, err := unix.pool.Client(ctx); err != nil || c.HasMech("PLAIN") {
		t.Fatalf("the restarted service offers %+v (%v), want LOGIN only", c.Mechs(), err)
	}
	if r, err := unix.Authenticate(ctx, login("plain1", "wrong")); err != nil || r.OK || r.Temp {
		t.Errorf("LOGIN, wrong password: %+v %v", r, err)
	}
}

// equal compares got with want; got's fields may go on after want's: the service adds some
// of its own to proxy replies of a lookup (lip, lport).
func equal(got, want passdb.Reply) bool {
	return got.OK == want.OK && got.Temp == want.Temp && got.User == want.User && got.Reason == want.Reason &&
		len(got.Fields) >= len(want.Fields) && slices.Equal(got.Fields[:len(want.Fields)], want.Fields)
}
