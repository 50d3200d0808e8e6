package doveadm

import (
	"bufio"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/proxyproto"
	"github.com/usher-mail/usher/internal/testenv"
)

// inet_listener http { haproxy = yes }: the request's log line names the client the PROXY
// header carried, over plain HTTP and over TLS (the header comes before the ClientHello), and
// a connection still waiting for its header holds up no other.
func TestPROXYHeaderOnTheAPI(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		log := &testenv.LogBuffer{}
		cfg := goldenConfig()
		cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
		s := NewServer(cfg, newFakeServices())
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		policy := proxyproto.NewPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, 10*time.Second, cfg.Logger)
		l := &proxyproto.Listener{Listener: tl, Policy: policy}
		ccfg := &tls.Config{}
		if useTLS {
			cert := testenv.TLSCert(t, netip.MustParseAddr("127.0.0.1"))
			go s.ServeTLS(l, &tls.Config{Certificates: []tls.Certificate{cert}})
			ccfg.InsecureSkipVerify = true // the client's trust is not what this tests
		} else {
			go s.Serve(l)
		}
		t.Cleanup(func() { s.Shutdown(t.Context()) })

		silent, err := net.Dial("tcp", tl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		c, err := net.Dial("tcp", tl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write([]byte("PROXY TCP4 192.0.2.9 127.0.0.1 5555 8080\r\n")); err != nil {
			t.Fatal(err)
		}
		var rw net.Conn = c
		if useTLS {
			rw = tls.Client(c, ccfg)
		}
		go rw.Write([]byte(post(`[["who",{},"t"]]`)))
		r, err := readHTTPResponse(bufio.NewReader(rw), false)
		if err != nil || r.status != 200 {
			t.Fatalf("tls %v: %+v, %v", useTLS, r, err)
		}
		waitLog := time.Now().Add(20 * time.Second)
		for !strings.Contains(log.String(), "remote=192.0.2.9") {
			if time.Now().After(waitLog) {
				t.Fatalf("tls %v: log %q lacks the carried client", useTLS, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
