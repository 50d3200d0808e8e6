package config

import (
	"os"
	"slices"
	"testing"
)

// The snippet the doveadm HTTP API documentation gives, verbatim from the
// product spec: odd indentation, a space after the last '}', a blank line.
func TestSpecDoveadmSnippet(t *testing.T) {
	s, warns, err := Load("testdata/doveadm-api.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if s.DoveadmPassword != "hellodoveadm" || s.DoveadmAPIKey != "key" {
		t.Errorf("password %q, api key %q", s.DoveadmPassword, s.DoveadmAPIKey)
	}
	if l, ok := s.Listener("doveadm", ""); !ok || l.Port != 2425 || l.Line != 9 {
		t.Errorf("unnamed listener = %+v, %v", l, ok)
	}
	if l, ok := s.Listener("doveadm", "http"); !ok || l.Port != 8080 || l.SSL || l.File != "testdata/doveadm-api.conf" || l.Line != 12 {
		t.Errorf("http listener = %+v, %v", l, ok)
	}
	svc, _ := s.Service("doveadm")
	want := UnixListener{Name: "doveadm-server", Path: "doveadm-server", Mode: "0600", User: "vmail",
		File: "testdata/doveadm-api.conf", Line: 6}
	if len(svc.UnixListeners) != 1 || svc.UnixListeners[0] != want {
		t.Errorf("unix listeners = %+v, want %+v", svc.UnixListeners, want)
	}
	if svc.Line != 5 {
		t.Errorf("service line = %d, want 5", svc.Line)
	}
}

// The two-backend director the team's checks write.
func TestSpecDirectorSnippet(t *testing.T) {
	s, warns, err := Load("testdata/director.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if !slices.Equal(s.Listen, []string{"127.0.0.10"}) ||
		!slices.Equal(s.Protocols, []string{"imap", "pop3", "lmtp", "sieve"}) ||
		!slices.Equal(s.DirectorServers, []string{"127.0.0.10:9090"}) ||
		s.DirectorMailServers != "127.0.0.11 127.0.0.12" || s.StateDir != "/var/lib/usher" {
		t.Errorf("settings = %+v", s)
	}
	if s.BackendIMAPPort != 143 || s.BackendPOP3Port != 110 || s.BackendLMTPPort != 24 ||
		s.BackendSievePort != 4190 || s.BackendDoveadmPort != 8080 || s.BackendSSL != "no" {
		t.Errorf("backend settings = %+v", s)
	}
	for _, c := range []struct {
		service, listener string
		port              int
		ssl               bool
	}{
		{"imap-login", "imap", 143, false},
		{"imap-login", "imaps", 993, true},
		{"pop3-login", "pop3", 110, false},
		{"pop3-login", "pop3s", 995, true}, // Dovecot's default, untouched
		{"lmtp", "lmtp", 24, false},
		{"managesieve-login", "sieve", 4190, false},
		{"doveadm", "http", 8080, false},
		{"director", "", 9090, false},
		{"director", "director-admin", 9091, false},
	} {
		l, ok := s.Listener(c.service, c.listener)
		if !ok || l.Port != c.port || l.SSL != c.ssl {
			t.Errorf("%s/%s = %+v, %v; want port %d ssl %v", c.service, c.listener, l, ok, c.port, c.ssl)
		}
	}
	dir, _ := s.Service("director")
	if len(dir.UnixListeners) != 1 || dir.UnixListeners[0].Path != "director-admin" || dir.UnixListeners[0].Line != 46 {
		t.Errorf("director unix listeners = %+v", dir.UnixListeners)
	}
}

// Both snippets must also parse through Parse, from memory.
func TestSpecSnippetsParse(t *testing.T) {
	for _, name := range []string{"testdata/doveadm-api.conf", "testdata/director.conf"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := Parse(name, data, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
