package config

import "testing"

func TestEndpoints(t *testing.T) {
	for in, want := range map[string]Endpoint{
		"unix:/run/dovecot/auth-client": {"unix", "/run/dovecot/auth-client"},
		"tcp:10.0.0.1:9000":             {"tcp", "10.0.0.1:9000"},
		"tcp:[::1]:9000":                {"tcp", "[::1]:9000"},
		"tcp:auth.example.com:9000":     {"tcp", "auth.example.com:9000"},
	} {
		s, _ := mustParse(t, "usher_auth_service = "+in+"\n", nil)
		if s.UsherAuthService != want || s.UsherAuthService.String() != in {
			t.Errorf("%q: %+v", in, s.UsherAuthService)
		}
	}
	for bad, msg := range map[string]string{
		"unix:relative":            `Invalid socket "unix:relative": unix: needs an absolute path`,
		"/run/dovecot/auth-client": `Invalid socket "/run/dovecot/auth-client" (use unix:/path or tcp:host:port)`,
		"tcp:host":                 `Invalid socket "tcp:host": tcp: needs host:port`,
		"tcp::9000":                `Invalid socket "tcp::9000": tcp: needs host:port`,
		"tcp:host:0":               `Invalid socket "tcp:host:0": tcp: needs host:port`,
		"tcp:host:65536":           `Invalid socket "tcp:host:65536": tcp: needs host:port`,
		"udp:host:1":               `Invalid socket "udp:host:1" (use unix:/path or tcp:host:port)`,
	} {
		wantError(t, "usher_auth_service = "+bad+"\n", nil, "usher.conf:1: usher_auth_service: "+msg)
	}
	wantError(t, "auth_socket_path = tcp:x\n", nil, `usher.conf:1: auth_socket_path: Invalid socket "tcp:x": tcp: needs host:port`)

	// LMTP's lookups: auth_socket_path as Dovecot reads it, next to the auth-client socket.
	for _, c := range []struct{ conf, want string }{
		{"", ""},
		{"auth_socket_path = /x/auth-master\n", ""}, // no service, no lookups
		{"usher_auth_service = unix:/run/dovecot/auth-client\n", "unix:/run/dovecot/auth-userdb"},
		{"usher_auth_service = unix:/run/dovecot/auth-client\nauth_socket_path = auth-master\n", "unix:/run/dovecot/auth-master"},
		{"usher_auth_service = unix:/run/dovecot/auth-client\nauth_socket_path = /srv/auth-master\n", "unix:/srv/auth-master"},
		{"usher_auth_service = unix:/run/dovecot/auth-client\nauth_socket_path =\n", ""},
		{"usher_auth_service = tcp:10.0.0.1:9000\n", ""},
		{"usher_auth_service = tcp:10.0.0.1:9000\nauth_socket_path = tcp:10.0.0.1:9001\n", "tcp:10.0.0.1:9001"},
		{"usher_auth_service = tcp:10.0.0.1:9000\nauth_socket_path = unix:/run/dovecot/auth-userdb\n", "unix:/run/dovecot/auth-userdb"},
	} {
		s, _ := mustParse(t, c.conf, nil)
		if got := s.AuthMasterEndpoint().String(); got != c.want {
			t.Errorf("%q: %q, want %q", c.conf, got, c.want)
		}
	}
}
