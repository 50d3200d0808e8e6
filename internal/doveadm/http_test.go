package doveadm

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

const authHdr = "Authorization: X-Dovecot-API a2V5\r\n"

func post(body string) string {
	return fmt.Sprintf("POST /doveadm/v1 HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s", authHdr, len(body), body)
}

func TestKeepAlive(t *testing.T) {
	_, addr := startServer(t, goldenConfig(), newFakeServices())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, tag := range []string{"one", "two"} {
		c.Write([]byte(post(`[["who",{},"` + tag + `"]]`)))
		r, err := readHTTPResponse(br, false)
		if err != nil {
			t.Fatal(err)
		}
		if r.body != `[["doveadmResponse",[],"`+tag+`"]]` {
			t.Fatalf("got %q", r.body)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	cfg := goldenConfig()
	cfg.APIKey = ""
	_, addr := startServer(t, cfg, newFakeServices())
	noAuth := Config{}
	_, addrNone := startServer(t, noAuth, newFakeServices())
	big := strings.Repeat("a", 1<<20+1)
	for _, c := range []struct {
		addr, raw string
		status    int
		check     func(*httpResp) bool
	}{
		{addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 401, func(r *httpResp) bool {
			return len(r.headers) == 4 && r.headers[3] == [2]string{"WWW-Authenticate", `Basic Realm="doveadm"`}
		}},
		{addrNone, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 500, func(r *httpResp) bool { return r.body == "Internal Server Error\r\n" }},
		{addr, "GET / HTTP/1.1\r\n\r\n", 400, func(r *httpResp) bool { return r.body == "Bad Request\r\n" }},
		{addr, "GET /" + strings.Repeat("x", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, nil},
		{addr, "POST /doveadm/v1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, nil},
		{addr, "POST /doveadm/v1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big), 413, func(r *httpResp) bool { return r.body == "Payload Too Large\r\n" }},
		{addr, "HEAD /doveadm/v1 HTTP/1.1\r\nHost: x\r\n\r\n", 404, func(r *httpResp) bool { return len(r.headers) == 2 }},
		{addr, "OPTIONS * HTTP/1.0\r\n\r\n", 200, func(r *httpResp) bool { return len(r.headers) == 7 }},
	} {
		r, err := exchange(t, c.addr, []byte(c.raw), strings.HasPrefix(c.raw, "HEAD"))
		if err != nil {
			t.Fatalf("%.40q: %v", c.raw, err)
		}
		if r.status != c.status || (c.check != nil && !c.check(r)) {
			t.Errorf("%.40q: got %d %s %v %q", c.raw, r.status, r.reason, r.headers, r.body)
		}
	}
}

func TestShutdownStopsServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(goldenConfig(), newFakeServices())
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
}

// TestSlowHeaderClients: with every slot held by clients sending their
// headers a byte at a time, an authenticated request still gets its answer
// (it takes the place of the client that waited longest), and a client
// that stalls in its headers is cut after HeaderTimeout.
func TestSlowHeaderClients(t *testing.T) {
	cfg := goldenConfig()
	cfg.MaxConnections = 64
	s, addr := startServer(t, cfg, newFakeServices())
	var slow []net.Conn
	for range 64 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("POST /doveadm/v1 HTTP/1.1\r\nHo"))
		slow = append(slow, c)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.connCount() < 64 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked", s.connCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second)) // against a hang, not a timing assertion
	c.Write([]byte(post(`[["who",{},"t"]]`)))
	r, err := readHTTPResponse(bufio.NewReader(c), false)
	if err != nil || r.body != `[["doveadmResponse",[],"t"]]` {
		t.Fatalf("authenticated request: %v %+v", err, r)
	}
	if n := s.connCount(); n > 64 {
		t.Errorf("%d connections tracked, limit 64", n)
	}

	cfg.HeaderTimeout = 100 * time.Millisecond
	s.SetConfig(cfg)
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("P"))
	c2.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(c2); err != nil {
		t.Fatalf("a stalled head was not cut: %v", err)
	}
}

// connCount is how many connections are being served.
func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// TestAPIKeyScheme pins what docs/api.md says: the key goes in
// "Authorization: X-Dovecot-API <base64>"; an X-Dovecot-API header is no
// credential.
func TestAPIKeyScheme(t *testing.T) {
	_, addr := startServer(t, goldenConfig(), newFakeServices())
	body := `[["who",{},"t"]]`
	for hdr, want := range map[string]int{
		"Authorization: X-Dovecot-API a2V5\r\n": 200,
		"X-Dovecot-API: a2V5\r\n":               401,
	} {
		raw := fmt.Sprintf("POST /doveadm/v1 HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s", hdr, len(body), body)
		r, err := exchange(t, addr, []byte(raw), false)
		if err != nil || r.status != want {
			t.Errorf("%q: %v %+v", hdr, err, r)
		}
	}
}
