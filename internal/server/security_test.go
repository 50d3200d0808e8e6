package server

import (
	"context"
	"net"
	"slices"
	"testing"

	"github.com/usher-mail/usher/internal/config"
)

// TestAdminListenAddrs: without an address of its own the TCP
// director-admin listener binds only loopback, whatever `listen` says; an
// explicit address is kept and flagged when it is not loopback.
func TestAdminListenAddrs(t *testing.T) {
	for _, c := range []struct {
		global, explicit []string
		want             []string
		exposed          bool
	}{
		{global: []string{"*", "::"}, want: []string{"127.0.0.1:9091", "[::1]:9091"}},
		{global: []string{"*"}, want: []string{"127.0.0.1:9091"}},
		{global: []string{"192.0.2.1", "127.0.0.10"}, want: []string{"127.0.0.10:9091"}},
		{global: []string{"192.0.2.1"}, want: []string{"127.0.0.1:9091"}},
		{global: []string{"*"}, explicit: []string{"127.0.0.5"}, want: []string{"127.0.0.5:9091"}},
		{global: []string{"127.0.0.1"}, explicit: []string{"*"}, want: []string{"0.0.0.0:9091"}, exposed: true},
		{global: []string{"*"}, explicit: []string{"192.0.2.1"}, want: []string{"192.0.2.1:9091"}, exposed: true},
	} {
		got, exposed := adminListenAddrs(c.global, &config.InetListener{Name: "director-admin", Address: c.explicit, Port: 9091})
		if !slices.Equal(got, c.want) || exposed != c.exposed {
			t.Errorf("listen %v address %v: %v %v, want %v %v", c.global, c.explicit, got, exposed, c.want, c.exposed)
		}
	}
}

// TestAPISocketPath: the API's socketPath reaches only this director's own
// admin sockets and its ring's admin port; anything else is refused without
// a connection (it was a port-scan oracle).
func TestAPISocketPath(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := probe.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	s := config.Defaults()
	s.DirectorServers = []string{"127.0.0.21:9090", "127.0.0.22:9090"}
	srv := &Server{settings: s, adminAt: []string{"/run/usher/director-admin", "127.0.0.21:9091"}}
	for path, want := range map[string]bool{
		"/run/usher/director-admin": true, "127.0.0.21:9091": true, "127.0.0.22:9091": true,
		"127.0.0.23:9091": false, "127.0.0.22:9092": false, "/etc/passwd": false,
		probe.Addr().String(): false,
	} {
		if got := srv.adminAllowed(path); got != want {
			t.Errorf("%s: allowed %v", path, got)
		}
	}
	if _, err := (apiServices{srv}).DialAdmin(context.Background(), probe.Addr().String()); err == nil {
		t.Error("dialed an arbitrary address")
	}
	select {
	case <-accepted:
		t.Error("the arbitrary address saw a connection")
	default:
	}
}
