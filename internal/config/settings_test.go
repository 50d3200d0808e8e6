package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	s, warns := mustParse(t, "", nil)
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if !slices.Equal(s.Protocols, []string{"imap", "pop3", "lmtp"}) || !slices.Equal(s.Listen, []string{"*", "::"}) ||
		s.BaseDir != "/run/usher" || s.StateDir != "/var/lib/usher" || s.SSL != "yes" || s.SSLMinProtocol != "TLSv1.2" ||
		!s.DisablePlaintextAuth || s.LoginGreeting != "Dovecot ready." || s.MailMaxUserIPConnections != 0 ||
		s.DirectorUserExpire != 15*time.Minute || s.DirectorUsernameHash != "%Lu" || s.DirectorUserKickDelay != 2*time.Second ||
		s.DirectorMaxParallelMoves != 100 || s.DirectorMaxParallelKicks != 100 || s.AuthUsernameFormat != "%Lu" ||
		s.LoginProxyTimeout != 30*time.Second || s.HAProxyTimeout != 3*time.Second || s.ImapMaxLineLength != 64<<10 ||
		s.BackendIMAPPort != 143 || s.BackendPOP3Port != 110 || s.BackendLMTPPort != 24 || s.BackendSievePort != 4190 ||
		s.BackendDoveadmPort != 0 || s.BackendSSL != "no" || s.BackendProxyProtocol != "no" || s.UsherLoginTimeout != time.Minute ||
		s.UsherMaxPreloginCommands != 30 || s.DirectorMailServers != "" || len(s.DirectorServers) != 0 ||
		s.UsherHealthCheck != "imap" || s.UsherHealthCheckInterval != 5*time.Second || s.UsherHealthCheckTimeout != 3*time.Second ||
		s.UsherHealthCheckFall != 3 || s.UsherHealthCheckRise != 2 || s.UsherHealthCheckUser != "" {
		t.Errorf("defaults = %+v", s)
	}
	if l, ok := s.Listener("imap-login", "imaps"); !ok || l.Port != 993 || !l.SSL || l.File != "" {
		t.Errorf("default imaps = %+v, %v", l, ok)
	}
	if _, ok := s.Service("nosuch"); ok {
		t.Error("Service(nosuch) found")
	}
	if _, ok := s.Listener("nosuch", "x"); ok {
		t.Error("Listener(nosuch) found")
	}
}

func TestTypedSettings(t *testing.T) {
	s, _ := mustParse(t, `
protocols = imap none imap
listen = 127.0.0.1, ::1 127.0.0.2
ssl = required
ssl_min_protocol = TLSv1.3
disable_plaintext_auth = no
login_trusted_networks = 10.1.2.3/8 192.0.2.7, 2001:db8::1 2001:db8:1::/48
haproxy_trusted_networks = 127.0.0.1
login_greeting = "usher ready."
mail_max_userip_connections = 10
doveadm_allowed_commands = director status, director  map,who
director_user_expire = 1 hour
director_user_kick_delay = 0
director_max_parallel_moves = 7
imap_max_line_length = 1M
login_proxy_timeout = 1500 ms
backend_ssl = starttls
usher_login_timeout = 2 mins
usher_max_prelogin_commands = 5
`, nil)
	prefixes := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	if !slices.Equal(s.Protocols, []string{"imap"}) || !slices.Equal(s.Listen, []string{"127.0.0.1", "::1", "127.0.0.2"}) ||
		s.SSL != "required" || s.SSLMinProtocol != "TLSv1.3" || s.DisablePlaintextAuth ||
		!slices.Equal(s.LoginTrustedNetworks, prefixes("10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128", "2001:db8:1::/48")) ||
		!slices.Equal(s.HAProxyTrustedNetworks, prefixes("127.0.0.1/32")) || s.LoginGreeting != "usher ready." ||
		s.MailMaxUserIPConnections != 10 || !slices.Equal(s.DoveadmAllowedCommands, []string{"director status", "director map", "who"}) ||
		s.DirectorUserExpire != time.Hour || s.DirectorUserKickDelay != 0 || s.DirectorMaxParallelMoves != 7 ||
		s.ImapMaxLineLength != 1<<20 || s.LoginProxyTimeout != 1500*time.Millisecond || s.BackendSSL != "starttls" ||
		s.UsherLoginTimeout != 2*time.Minute || s.UsherMaxPreloginCommands != 5 {
		t.Errorf("settings = %+v", s)
	}
}

func TestSettingErrors(t *testing.T) {
	for _, c := range []struct{ text, msg string }{
		{"\ndisable_plaintext_auth = true\n", "usher.conf:2: disable_plaintext_auth: Invalid boolean value: true (use yes or no)"},
		{"mail_max_userip_connections = 5k\n", "usher.conf:1: mail_max_userip_connections: Invalid number 5k: Not a valid number"},
		{"mail_max_userip_connections = 99999999999\n", "usher.conf:1: mail_max_userip_connections: Invalid number 99999999999: Number too large"},
		{"director_user_expire = 10x\n", "usher.conf:1: director_user_expire: Invalid time interval: 10x"},
		{"director_user_kick_delay = 1500ms\n", "usher.conf:1: director_user_kick_delay: Milliseconds not supported for this setting: 1500ms"},
		{"login_greeting = x\ndirector_user_expire = 9s\n", "usher.conf:2: director_user_expire is too low (minimum 10 secs)"},
		{"ssl = maybe\n", `usher.conf:1: ssl: Invalid value "maybe" (use no, yes, required)`},
		{"backend_ssl = tls\n", `usher.conf:1: backend_ssl: Invalid value "tls" (use no, yes, starttls)`},
		{"protocols = imap smtp\n", "usher.conf:1: protocols: Unknown protocol: smtp"},
		{"login_trusted_networks = 10.0.0.0/33\n", "usher.conf:1: login_trusted_networks: Invalid network: 10.0.0.0/33"},
		{"haproxy_trusted_networks = fe80::1%eth0\n", "usher.conf:1: haproxy_trusted_networks: Invalid network: fe80::1%eth0"},
		{"backend_imap_port = 65536\n", "usher.conf:1: backend_imap_port: Invalid port 65536: must be a number from 0 to 65535"},
		{"imap_max_line_length = 3 kilo\n", "usher.conf:1: imap_max_line_length: Invalid size: 3 kilo"},
		{"\n\ndirector_server = x\n", "usher.conf:3: Unknown setting: director_server"},
		{"servce imap {\n}\n", "usher.conf:1: Unknown section: servce"},
		{"usher_health_check = smtp\n", `usher.conf:1: usher_health_check: Invalid value "smtp" (use imap, pop3, lmtp, none)`},
		{"usher_health_check_interval = 50 ms\n", "usher.conf:1: usher_health_check_interval: Invalid time interval: 50 ms (minimum 100ms)"},
		{"usher_health_check_fall = 0\n", "usher.conf:1: usher_health_check_fall: Invalid number: 0 (minimum 1)"},
		{"usher_health_check_rise = 101\n", "usher.conf:1: usher_health_check_rise: Invalid number 101: Number too large"},
	} {
		wantError(t, c.text, nil, c.msg)
	}
	wantError(t, "usher_health_check_password = </pw\n", map[string]string{"/pw": "a\nb"},
		"usher.conf:1: usher_health_check_password: must be at most 1024 bytes without CR, LF or NUL")
	if s, _ := mustParse(t, "usher_health_check_password = </pw\n", map[string]string{"/pw": "secret\n"}); s.UsherHealthCheckPassword != "secret" {
		t.Errorf("password from a file: %q", s.UsherHealthCheckPassword)
	}
}

// A low value fixed by a later line is fine: only the final value counts.
func TestUserExpireOverridden(t *testing.T) {
	s, _ := mustParse(t, "director_user_expire = 5s\ndirector_user_expire = 10s\n", nil)
	if s.DirectorUserExpire != 10*time.Second {
		t.Errorf("expire = %v", s.DirectorUserExpire)
	}
}

func TestDovecotSettingsWarn(t *testing.T) {
	s, warns := mustParse(t, `mail_location = maildir:~/Maildir
auth_mechanisms = plain login
passdb {
  driver = static
  args = proxy=y nopassword=y
}
protocol imap {
  mail_max_userip_connections = 20
}
plugin {
  anything_goes = 1
}
`, nil)
	want := []Warning{
		{"usher.conf", 1, "mail_location is a Dovecot setting that usher does not use; ignored"},
		{"usher.conf", 2, "auth_mechanisms is a Dovecot setting that usher does not use; ignored"},
		{"usher.conf", 7, "section protocol imap is not used by usher; its contents are ignored"},
		{"usher.conf", 10, "section plugin is not used by usher; its contents are ignored"},
	}
	if !slices.Equal(warns, want) {
		t.Errorf("warnings =\n%v\nwant\n%v", warns, want)
	}
	if s.MailMaxUserIPConnections != 0 {
		t.Errorf("protocol block leaked: %d", s.MailMaxUserIPConnections)
	}
	if want := []Passdb{{Driver: "static", Args: "proxy=y nopassword=y", File: "usher.conf", Line: 3}}; !slices.Equal(s.Passdbs, want) {
		t.Errorf("Passdbs = %+v, want %+v", s.Passdbs, want)
	}
	if got := warns[0].String(); got != "usher.conf:1: mail_location is a Dovecot setting that usher does not use; ignored" {
		t.Errorf("Warning.String() = %q", got)
	}
}

func TestServices(t *testing.T) {
	s, _ := mustParse(t, `
service imap-login {
  process_limit = 100
  client_limit = 1000
  vsz_limit = 1G
  user = dovenull
  inet_listener imap {
    address = 127.0.0.1, ::1
    port = 10143
    haproxy = no
    reuse_port = yes
  }
  inet_listener imaps {
    port = 0
    haproxy = yes
  }
  fifo_listener login/proxy-notify {
    mode = 0600
  }
}
service imap-login {
  inet_listener imap {
    ssl = yes
  }
}
service custom {
  unix_listener admin {
    path = /run/usher/admin.sock
    mode = 0660
    user = root
    group = mail
  }
}
`, nil)
	l, ok := s.Listener("imap-login", "imap")
	want := InetListener{Name: "imap", Address: []string{"127.0.0.1", "::1"}, Port: 10143, SSL: true, HAProxy: false,
		File: "usher.conf", Line: 22}
	if !ok || l.Name != want.Name || !slices.Equal(l.Address, want.Address) || l.Port != want.Port || l.SSL != want.SSL ||
		l.HAProxy != want.HAProxy || l.File != want.File || l.Line != want.Line {
		t.Errorf("imap listener = %+v, want %+v (blocks merge, later lines win)", l, want)
	}
	if l, _ := s.Listener("imap-login", "imaps"); l.Port != 0 || !l.SSL || !l.HAProxy {
		t.Errorf("imaps = %+v", l)
	}
	svc, _ := s.Service("imap-login")
	if svc.Line != 2 || len(svc.InetListeners) != 2 || svc.ClientLimit != 1000 || svc.ProcessLimit != 100 {
		t.Errorf("imap-login = %+v", svc)
	}
	// Dovecot's per-service defaults: lmtp and doveadm serve one client
	// per process, the director is one process.
	for name, want := range map[string]int{"imap-login": 100000, "pop3-login": 100000, "lmtp": 100, "doveadm": 100, "director": 1000} {
		if svc, _ := s.Service(name); s.ConnLimit(svc) != want {
			t.Errorf("%s: ConnLimit %d, want %d", name, s.ConnLimit(svc), want)
		}
	}
	custom, ok := s.Service("custom")
	wantUnix := UnixListener{Name: "admin", Path: "/run/usher/admin.sock", Mode: "0660", User: "root", Group: "mail",
		File: "usher.conf", Line: 27}
	if !ok || len(custom.UnixListeners) != 1 || custom.UnixListeners[0] != wantUnix || s.Services[len(s.Services)-1].Name != "custom" {
		t.Errorf("custom = %+v", custom)
	}
}

func TestServiceErrors(t *testing.T) {
	for _, c := range []struct{ text, msg string }{
		{"service {\n}\n", "usher.conf:1: service section is missing a name"},
		{"service director {\n inet_listener {\n  haproxy = yes\n }\n}\n", "usher.conf:3: haproxy = yes: the PROXY protocol is not supported in service director"},
		{"service usher {\n inet_listener metrics {\n  haproxy = yes\n }\n}\n", "usher.conf:3: haproxy = yes: the PROXY protocol is not supported in service usher"},
		{"backend_proxy_protocol = v1\n", `usher.conf:1: backend_proxy_protocol: Invalid value "v1" (use no, v2)`},
		{"service imap-login {\n client_limit = many\n}\n", "usher.conf:2: client_limit: Invalid number many: Not a valid number"},
		{"service imap-login {\n  proces_limit = 1\n}\n", "usher.conf:2: Unknown setting in service imap-login: proces_limit"},
		{"service imap-login {\n  listener x {\n  }\n}\n", "usher.conf:2: Unknown section in service imap-login: listener"},
		{"service imap-login {\n  inet_listener imap {\n    prot = 1\n  }\n}\n", "usher.conf:3: Unknown setting in inet_listener: prot"},
		{"service imap-login {\n  inet_listener imap {\n    port = 70000\n  }\n}\n", "usher.conf:3: port: Invalid port 70000: must be a number from 0 to 65535"},
		{"service imap-login {\n  inet_listener imap {\n    port = -1\n  }\n}\n", "usher.conf:3: port: Invalid port -1: must be a number from 0 to 65535"},
		{"service imap-login {\n  inet_listener imap {\n    ssl = true\n  }\n}\n", "usher.conf:3: ssl: Invalid boolean value: true (use yes or no)"},
		{"service imap-login {\n  inet_listener imap {\n    x {\n    }\n  }\n}\n", "usher.conf:3: Unknown section in inet_listener: x"},
		{"service d {\n  unix_listener {\n  }\n}\n", "usher.conf:2: unix_listener is missing a path"},
		{"service d {\n  unix_listener s {\n    mode = rw\n  }\n}\n", "usher.conf:3: mode: Invalid file mode rw (use octal, e.g. 0600)"},
		{"service d {\n  unix_listener s {\n    port = 1\n  }\n}\n", "usher.conf:3: Unknown setting in unix_listener: port"},
		{"service d {\n  fifo_listener s {\n    port = 1\n  }\n}\n", "usher.conf:3: Unknown setting in fifo_listener: port"},
	} {
		wantError(t, c.text, nil, c.msg)
	}
}

// Errors inside included files name the included file, and warnings gathered
// before an error are still returned.
func TestWarningsReturnedWithError(t *testing.T) {
	_, warns, err := Parse("usher.conf", []byte("mail_location = x\n!include a.conf\n"),
		memFiles(map[string]string{"a.conf": "\nbogus = 1\n"}))
	if err == nil || err.Error() != "a.conf:2: Unknown setting: bogus" {
		t.Fatalf("err = %v", err)
	}
	if len(warns) != 1 || !strings.HasPrefix(warns[0].String(), "usher.conf:1: mail_location") {
		t.Errorf("warnings = %v", warns)
	}
}
