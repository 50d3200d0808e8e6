// Package devbackend runs in-memory demo IMAP backends for `usher serve
// -dev`, so a newcomer sees usher route users without installing a mail
// server. Each backend says in its messages which backend it is.
package devbackend

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// Backend is one running demo IMAP server.
type Backend struct {
	name    string
	ln      net.Listener
	srv     *imapserver.Server
	log     *slog.Logger
	served  chan struct{}
	once    sync.Once
	closing atomic.Bool
}

// Start listens on addr, which must be a loopback address because the demo
// accepts plaintext passwords, and serves users (name -> password), each
// with a few messages in INBOX naming this backend.
func Start(addr, name string, users map[string]string, logger *slog.Logger) (*Backend, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}

	mem := imapmemserver.New()
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	now := time.Now()
	for _, u := range names {
		user := imapmemserver.NewUser(u, users[u])
		if err := populate(user, name, u, now); err != nil {
			return nil, fmt.Errorf("devbackend %s: user %s: %w", name, u, err)
		}
		mem.AddUser(user)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devbackend %s: %w", name, err)
	}
	log := logger.With("backend", name)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		Logger:       printfLogger{log},
		InsecureAuth: true, // loopback only, checked above
	})
	b := &Backend{name: name, ln: ln, srv: srv, log: log, served: make(chan struct{})}
	go func() {
		defer close(b.served)
		err := srv.Serve(idListener{Listener: ln, backend: name, log: log})
		if err != nil && !b.closing.Load() {
			log.Error("demo backend stopped", "err", err)
		}
	}()
	log.Info("demo IMAP backend listening", "addr", ln.Addr().String(), "users", len(users))
	return b, nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("devbackend: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("devbackend: %q is not a loopback address; the demo backends accept plaintext passwords", addr)
	}
	return nil
}

// Demo messages, in INBOX order. %[1]s is the backend, %[2]s the user.
var demoMessages = []struct{ subject, body string }{
	{"Welcome to backend %[1]s",
		"Hello %[2]s,\r\n\r\nthis mailbox lives on backend %[1]s. usher sent you here and will keep\r\nsending you here: every login of %[2]s goes to the same backend.\r\n"},
	{"Where is my mail? (backend %[1]s)",
		"Try `usher director status %[2]s` to see which backend usher chose for you,\r\nor move yourself with `usher director move %[2]s <host>` and log in again.\r\n"},
}

func populate(u *imapmemserver.User, backend, user string, now time.Time) error {
	if err := u.Create("INBOX", nil); err != nil {
		return err
	}
	for i, m := range demoMessages {
		subject := fmt.Sprintf(m.subject, backend, user)
		msg := fmt.Sprintf("From: usher <usher@%[1]s.invalid>\r\nTo: %[2]s\r\nSubject: %[3]s\r\n"+
			"Date: %[4]s\r\nMessage-ID: <demo-%[5]d.%[2]s@%[1]s.invalid>\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\n\r\n",
			backend, user, subject, now.Format(time.RFC1123Z), i)
		msg += fmt.Sprintf(m.body, backend, user)
		r := bytes.NewReader([]byte(msg))
		if _, err := u.Append("INBOX", r, &imap.AppendOptions{Time: now}); err != nil {
			return err
		}
	}
	return nil
}

// Name is the backend's name, as in its messages.
func (b *Backend) Name() string { return b.name }

// Addr is the address the backend listens on.
func (b *Backend) Addr() net.Addr { return b.ln.Addr() }

// Close stops listening and drops every connection.
func (b *Backend) Close() error {
	var err error
	b.once.Do(func() {
		b.closing.Store(true)
		err = b.srv.Close()
		// The server only closes listeners its Serve has registered; Close
		// may come before the serving goroutine got that far.
		b.ln.Close()
		<-b.served
	})
	return err
}

// printfLogger routes the library's messages to slog.
type printfLogger struct{ log *slog.Logger }

func (l printfLogger) Printf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...))
}
