package server

import (
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/usher-mail/usher/internal/config"
)

// parseSettings parses a config text as usher would read it from a file.
func parseSettings(t *testing.T, text string) *config.Settings {
	t.Helper()
	s, _, err := config.Parse("test.conf", []byte(text), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return s
}

// Where each listener binds: "*" is every IPv4 address, "::" every IPv6 one, both together
// one dual-stack socket; a listener's own address wins over `listen`.
func TestListenAddrs(t *testing.T) {
	for _, c := range []struct {
		name             string
		global, explicit []string
		want             []string
	}{
		{"any IPv4", []string{"*"}, nil, []string{"0.0.0.0:143"}},
		{"any IPv6", []string{"::"}, nil, []string{"[::]:143"}},
		{"any IPv6 bracketed", []string{"[::]"}, nil, []string{"[::]:143"}},
		{"both: one dual-stack socket", []string{"*", "::"}, nil, []string{":143"}},
		{"explicit IPv4", []string{"127.0.0.1"}, nil, []string{"127.0.0.1:143"}},
		{"explicit IPv6", []string{"::1"}, nil, []string{"[::1]:143"}},
		{"explicit IPv6 bracketed", []string{"[::1]"}, nil, []string{"[::1]:143"}},
		{"several, order kept", []string{"127.0.0.2", "127.0.0.1"}, nil, []string{"127.0.0.2:143", "127.0.0.1:143"}},
		{"explicit and any", []string{"127.0.0.1", "::"}, nil, []string{"127.0.0.1:143", "[::]:143"}},
		{"the listener's own address wins", []string{"*", "::"}, []string{"127.0.0.5"}, []string{"127.0.0.5:143"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := listenAddrs(c.global, &config.InetListener{Name: "imap", Address: c.explicit, Port: 143})
			if !slices.Equal(got, c.want) {
				t.Errorf("listenAddrs(%q, %q) = %q, want %q", c.global, c.explicit, got, c.want)
			}
		})
	}
}

// The same settings through the config parser, end to end: listen, listener addresses and
// ports as a config file writes them.
func TestListenAddrsFromConfig(t *testing.T) {
	s := parseSettings(t, `
listen = 127.0.0.1, ::1
service imap-login {
  inet_listener imap {
    port = 10143
  }
  inet_listener imaps {
    address = 127.0.0.9
    port = 10993
    ssl = yes
  }
}
`)
	svc, ok := s.Service("imap-login")
	if !ok {
		t.Fatal("no imap-login service")
	}
	got := map[string][]string{}
	for i := range svc.InetListeners {
		l := &svc.InetListeners[i]
		got[l.Name] = listenAddrs(s.Listen, l)
	}
	want := map[string][]string{"imap": {"127.0.0.1:10143", "[::1]:10143"}, "imaps": {"127.0.0.9:10993"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// This director's ring address: the director_servers entry on one of the listen addresses,
// else the only entry, else the first explicit listen address on the ring port.
func TestSelfAddr(t *testing.T) {
	for _, c := range []struct {
		name, conf string
		want       string
	}{
		{"the entry we listen on", `
listen = 127.0.0.2
director_servers = 127.0.0.1 127.0.0.2 127.0.0.3
`, "127.0.0.2:9090"},
		{"the entry we listen on, among several listen addresses", `
listen = ::1, 127.0.0.3
director_servers = 127.0.0.1:9095 127.0.0.3:9095
`, "127.0.0.3:9095"},
		{"a ring of one", `
listen = *
director_servers = 127.0.0.7
`, "127.0.0.7:9090"},
		{"the ring port from the director's unnamed inet_listener", `
listen = 127.0.0.4
director_servers = 127.0.0.4
service director {
  inet_listener {
    port = 9191
  }
}
`, "127.0.0.4:9191"},
		{"no ring: the first explicit listen address", `
listen = *, 127.0.0.6
`, "127.0.0.6:9090"},
		{"no ring, listen = *: loopback", `
listen = *
`, "127.0.0.1:9090"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := selfAddr(parseSettings(t, c.conf)); got != netip.MustParseAddrPort(c.want) {
				t.Errorf("selfAddr = %v, want %s", got, c.want)
			}
		})
	}
}

// director_servers entries: ip or ip:port (default: the ring port), IPv4-mapped addresses
// unmapped, host names skipped; the peers are the members but this director.
func TestRingMembers(t *testing.T) {
	s := parseSettings(t, `
director_servers = 127.0.0.1 127.0.0.2:9999 ::ffff:127.0.0.3 [::1]:9092 ::2 director.example.invalid
service director {
  inet_listener {
    port = 9091
  }
}
`)
	want := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:9091"),
		netip.MustParseAddrPort("127.0.0.2:9999"),
		netip.MustParseAddrPort("127.0.0.3:9091"),
		netip.MustParseAddrPort("[::1]:9092"),
		netip.MustParseAddrPort("[::2]:9091"),
	}
	if got := ringMembers(s); !slices.Equal(got, want) {
		t.Errorf("ringMembers = %v, want %v", got, want)
	}
	peers := ringPeers(s, netip.MustParseAddrPort("127.0.0.2:9999"))
	if want := []string{"127.0.0.1:9091", "127.0.0.3:9091", "[::1]:9092", "[::2]:9091"}; !slices.Equal(peers, want) {
		t.Errorf("ringPeers = %q, want %q", peers, want)
	}
}

// TestConfiguredHostnames: a host given by name in director_mail_servers keeps its name in the
// replicated state (Dovecot's ring syncs it with the host, and answers host=<name> hostip=<ip>
// for it), through the raft log across a restart; an IP literal has none.
func TestConfiguredHostnames(t *testing.T) {
	s := config.Defaults()
	s.StateDir = t.TempDir()
	s.DirectorMailServers = "localhost 127.0.0.7"
	for round := range 2 {
		srv, err := OpenOffline(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, h := range srv.router.Hosts() {
			got[h.IP.String()] = h.Hostname
		}
		srv.Stop()
		srv.Wait()
		if got["127.0.0.1"] != "localhost" || got["127.0.0.7"] != "" {
			t.Errorf("round %d: hostnames %v", round, got)
		}
	}
}
