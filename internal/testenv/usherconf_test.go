package testenv_test

import (
	"net/netip"
	"testing"

	"github.com/usher-mail/usher/internal/config"
	"github.com/usher-mail/usher/internal/testenv"
)

// TestUsherConfParses: what the harnesses write is a config usher itself reads back as meant,
// listeners, ports, TLS flags and the caller's settings included.
func TestUsherConfParses(t *testing.T) {
	dir := t.TempDir()
	c := testenv.UsherConf{IP: netip.MustParseAddr("127.0.0.1"), Dir: dir, Protocols: "imap lmtp",
		Comment:  "generated",
		Settings: "ssl = no\ndirector_mail_servers = 127.0.0.2\ndoveadm_password = pw\n",
		Services: []testenv.Service{
			{Name: "imap-login", Inet: []testenv.Listener{{Name: "imap", Port: 1143}, {Name: "imaps", Port: 1993, SSL: true}, {Name: "imap2", Port: 1994, SSL: true}}},
			{Name: "lmtp", Inet: []testenv.Listener{{Name: "lmtp", Port: 1024, HAProxy: true}}},
			{Name: "director", Unix: []string{"director-admin"}, Inet: []testenv.Listener{{Port: 1090}}},
		}}
	s, _, err := config.Load(c.Write(t))
	if err != nil {
		t.Fatalf("%v\n%s", err, c)
	}
	if s.BaseDir != dir+"/run" || s.StateDir != dir+"/state" || len(s.Protocols) != 2 || s.DoveadmPassword != "pw" {
		t.Errorf("settings: base_dir %q state_dir %q protocols %v doveadm_password %q", s.BaseDir, s.StateDir, s.Protocols, s.DoveadmPassword)
	}
	for _, want := range []struct {
		service, name string
		port          int
		ssl, haproxy  bool
	}{{"imap-login", "imap", 1143, false, false}, {"imap-login", "imaps", 1993, true, false}, {"imap-login", "imap2", 1994, true, false},
		{"lmtp", "lmtp", 1024, false, true}, {"director", "", 1090, false, false}} {
		l, ok := s.Listener(want.service, want.name)
		if !ok || l.Port != want.port || l.SSL != want.ssl || l.HAProxy != want.haproxy {
			t.Errorf("%s/%s: %+v (found %v), want port %d ssl %v haproxy %v", want.service, want.name, l, ok, want.port, want.ssl, want.haproxy)
		}
	}
	svc, ok := s.Service("director")
	if !ok || len(svc.UnixListeners) != 1 {
		t.Errorf("director's unix listeners: %+v", svc)
	}
}
