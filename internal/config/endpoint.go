package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// Endpoint is a stream socket usher connects to: Network "unix" or "tcp", Addr for
// net.Dial. The zero Endpoint is none.
type Endpoint struct{ Network, Addr string }

// String is the endpoint as written in a configuration ("" for none).
func (e Endpoint) String() string {
	if e.Network == "" {
		return ""
	}
	return e.Network + ":" + e.Addr
}

// ParseEndpoint reads "unix:/absolute/path" or "tcp:host:port".
func ParseEndpoint(s string) (Endpoint, error) {
	network, addr, _ := strings.Cut(s, ":")
	switch network {
	case "unix":
		if filepath.IsAbs(addr) && !strings.ContainsAny(addr, "\x00\r\n") {
			return Endpoint{network, addr}, nil
		}
		return Endpoint{}, fmt.Errorf("Invalid socket %q: unix: needs an absolute path", s)
	case "tcp":
		host, port, err := net.SplitHostPort(addr)
		if n, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil || n == 0 {
			return Endpoint{}, fmt.Errorf("Invalid socket %q: tcp: needs host:port", s)
		}
		return Endpoint{network, addr}, nil
	}
	return Endpoint{}, fmt.Errorf("Invalid socket %q (use unix:/path or tcp:host:port)", s)
}

// asEndpoint is ParseEndpoint for a setting whose empty value means none.
func asEndpoint(v string) (Endpoint, error) {
	if v == "" {
		return Endpoint{}, nil
	}
	return ParseEndpoint(v)
}

// AuthMasterEndpoint is where usher asks the auth service for lookups without a password
// (LMTP): auth_socket_path as Dovecot reads it (a path; a relative one is in Dovecot's
// base_dir, taken here as the directory of usher_auth_service's unix socket), or usher's
// unix:/path and tcp:host:port. None when usher_auth_service is unset, or when the path is
// relative and the service is reached over TCP.
func (s *Settings) AuthMasterEndpoint() Endpoint {
	p, svc := s.AuthSocketPath, s.UsherAuthService
	switch {
	case svc.Network == "" || p == "":
		return Endpoint{}
	case strings.HasPrefix(p, "unix:") || strings.HasPrefix(p, "tcp:"):
		e, _ := ParseEndpoint(p) // checked when the file was read
		return e
	case filepath.IsAbs(p):
		return Endpoint{"unix", p}
	case svc.Network == "unix":
		return Endpoint{"unix", filepath.Join(filepath.Dir(svc.Addr), p)}
	}
	return Endpoint{}
}

// asAuthSocketPath accepts a path (Dovecot's form) or an endpoint.
func asAuthSocketPath(v string) (string, error) {
	if strings.HasPrefix(v, "unix:") || strings.HasPrefix(v, "tcp:") {
		_, err := ParseEndpoint(v)
		return v, err
	}
	if strings.ContainsAny(v, "\x00\r\n") {
		return "", fmt.Errorf("Invalid path %q", v)
	}
	return v, nil
}
