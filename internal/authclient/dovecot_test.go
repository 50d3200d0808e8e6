package authclient

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/testenv"
)

// The auth service of a real Dovecot 2.3 backend, over its auth-client socket: the
// handshake's mechanisms, PLAIN with an initial response, LOGIN over CONT rounds, a wrong
// password, an unknown user, a mechanism the service does not offer (refused here, so the
// connection lives on), many requests at once on one connection, and a Pool that dials again
// after the service restarted.
func TestDovecotAuthService(t *testing.T) {
	cl := testenv.StartDovecot(t, testenv.Options{N: 1, Users: 30})
	b := cl.Backends()[0]
	sock := filepath.Join(b.RunDir, "auth-client")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c, err := Dial(ctx, "unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.HasMech("PLAIN") || !c.HasMech("login") || c.HasMech("XOAUTH2") {
		t.Fatalf("mechanisms %+v", c.Mechs())
	}

	req := func(user, pass string) Request {
		return Request{Mech: "PLAIN", Service: "imap", RemoteIP: netip.MustParseAddr("127.0.0.9"), RemotePort: 40000,
			LocalIP: b.IP, LocalPort: 143, Secured: true, Session: "s\t1",
			Initial: []byte("\x00" + user + "\x00" + pass), HasInitial: true}
	}
	if _, r, err := c.Start(ctx, req("user001", cl.Password())); err != nil || r.Kind != OK {
		t.Fatalf("PLAIN: %+v %v", r, err)
	} else if u, _ := r.Get("user"); u != "user001" {
		t.Fatalf("user %q", u)
	}

	// LOGIN: no initial response, the service asks for the name and then the password.
	e, r, err := c.Start(ctx, Request{Mech: "LOGIN", Service: "imap"})
	if err != nil || r.Kind != Cont || string(r.Data) != "Username:" {
		t.Fatalf("LOGIN start: %+v %v", r, err)
	}
	if r, err = e.Continue(ctx, []byte("user002")); err != nil || r.Kind != Cont || string(r.Data) != "Password:" {
		t.Fatalf("LOGIN name: %+v %v", r, err)
	}
	if r, err = e.Continue(ctx, []byte(cl.Password())); err != nil || r.Kind != OK {
		t.Fatalf("LOGIN password: %+v %v", r, err)
	}

	// A client that gives up mid-exchange ("*"): the request is cancelled, the connection lives.
	e, r, err = c.Start(ctx, Request{Mech: "PLAIN", Service: "imap"})
	if err != nil || r.Kind != Cont || len(r.Data) != 0 {
		t.Fatalf("PLAIN without initial response: %+v %v", r, err)
	}
	e.Cancel()

	if _, _, err := c.Start(ctx, Request{Mech: "XOAUTH2", Service: "imap"}); err == nil {
		t.Fatal("a mechanism the service does not offer was sent")
	}

	// Many logins at once on the one connection, every reply reaching its own request;
	// the wrong passwords among them fail (after the service's failure delay).
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := 1; i <= 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, pass, want := testenv.UserName(i), cl.Password(), OK
			if i%10 == 0 {
				pass, want = "wrong", Fail
			}
			_, r, err := c.Start(ctx, req(user, pass))
			if err != nil {
				errs <- err
				return
			}
			if u, _ := r.Get("user"); r.Kind != want || u != user {
				errs <- fmt.Errorf("%s: %v user=%q, want %v", user, r.Kind, u, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, r, err := c.Start(ctx, req("nosuch", "x")); err != nil || r.Kind != Fail {
		t.Fatalf("unknown user: %+v %v", r, err)
	}

	// The service restarts: the old connection ends, a Pool dials the new one.
	p := NewPool("unix", sock)
	defer p.Close()
	old, err := p.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.done:
	case <-ctx.Done():
		t.Fatal("the connection outlived the auth service")
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	nc, err := p.Client(ctx)
	if err != nil || nc == old {
		t.Fatalf("pool after restart: %v (same client %v)", err, nc == old)
	}
	if _, r, err := nc.Start(ctx, req("user003", cl.Password())); err != nil || r.Kind != OK {
		t.Fatalf("after restart: %+v %v", r, err)
	}
}
