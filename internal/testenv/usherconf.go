package testenv

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// UsherConf is the usher.conf of a test's usher: the lines every harness writes the same way
// (listen, base_dir, state_dir, protocols and the service listener blocks), and the rest of
// the test's settings as given.
type UsherConf struct {
	IP        netip.Addr
	Dir       string // base_dir is Dir/run, state_dir Dir/state; Write puts the file in Dir
	Protocols string // e.g. "imap lmtp"
	Comment   string // an optional first line, without the "# "
	// Settings are more "key = value" lines and sections (passdb { ... }), written between
	// the fixed lines and the service blocks.
	Settings string
	Services []Service
}

// Service is one `service NAME { ... }` block.
type Service struct {
	Name string
	Inet []Listener
	Unix []string // unix_listener names, with default settings
}

// Listener is one inet_listener; Port 0 turns it off, an empty Name writes an unnamed one.
type Listener struct {
	Name    string
	Port    int
	SSL     bool
	HAProxy bool // haproxy = yes: connections open with a PROXY header
}

// Inet is a Service with one inet_listener, the common case.
func Inet(service, listener string, port int) Service {
	return Service{Name: service, Inet: []Listener{{Name: listener, Port: port}}}
}

func (c UsherConf) String() string {
	var sb strings.Builder
	if c.Comment != "" {
		fmt.Fprintf(&sb, "# %s\n", c.Comment)
	}
	fmt.Fprintf(&sb, "listen = %s\nbase_dir = %s/run\nstate_dir = %[2]s/state\nprotocols = %s\n",
		c.IP, c.Dir, c.Protocols)
	if c.Settings != "" {
		sb.WriteString(strings.TrimRight(c.Settings, "\n") + "\n")
	}
	for _, s := range c.Services {
		sb.WriteString(s.String())
	}
	return sb.String()
}

// String is the service block as usher.conf holds it.
func (s Service) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "service %s {\n", s.Name)
	for _, u := range s.Unix {
		fmt.Fprintf(&sb, "  unix_listener %s {\n  }\n", u)
	}
	for _, l := range s.Inet {
		name := l.Name
		if name != "" {
			name += " "
		}
		fmt.Fprintf(&sb, "  inet_listener %s{\n    port = %d\n", name, l.Port)
		if l.SSL {
			sb.WriteString("    ssl = yes\n")
		}
		if l.HAProxy {
			sb.WriteString("    haproxy = yes\n")
		}
		sb.WriteString("  }\n")
	}
	sb.WriteString("}\n")
	return sb.String()
}

// Write writes the config to Dir/usher.conf and returns that path.
func (c UsherConf) Write(t testing.TB) string {
	t.Helper()
	path := filepath.Join(c.Dir, "usher.conf")
	if err := os.WriteFile(path, []byte(c.String()), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return path
}
