package testenv

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseWhoFlushBug(t *testing.T) {
	// Dovecot 2.3 closes the row array after the first user; the rest follow as bare objects.
	body := `[["doveadmResponse",[{"username":"user001","connections":"2","service":"imap","pids":"(10 11)","ips":"(192.0.2.7 127.0.0.1)"}],` +
		`{"username":"user002","connections":"1","service":"pop3","pids":"(12)","ips":"()"},"t"]]`
	elems, err := parseResponse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseWho(elems)
	if err != nil {
		t.Fatal(err)
	}
	want := []WhoRow{
		{Username: "user001", Service: "imap", Connections: 2, PIDs: []int{10, 11},
			IPs: []netip.Addr{netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("127.0.0.1")}},
		{Username: "user002", Service: "pop3", Connections: 1, PIDs: []int{12}},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows = %+v, want %+v", rows, want)
	}
}

func TestParseResponseEmptyAndError(t *testing.T) {
	elems, err := parseResponse([]byte(`[["doveadmResponse",[],"t"]]`))
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := parseWho(elems); err != nil || len(rows) != 0 {
		t.Fatalf("rows %v err %v, want none", rows, err)
	}
	_, err = parseResponse([]byte(`[["error",{"type":"exitCode", "exitCode":64},"t"]]`))
	var de *DoveadmError
	if !errors.As(err, &de) || de.ExitCode != 64 || de.Type != "exitCode" {
		t.Fatalf("err = %v, want exitCode 64", err)
	}
	for _, bad := range []string{``, `[]`, `[[]]`, `[["x",1,"t"]]`, `{}`} {
		if _, err := parseResponse([]byte(bad)); err == nil {
			t.Errorf("parseResponse(%q) succeeded", bad)
		}
	}
}

func TestMessageSize(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, size := range []int{0, 100, 1000, 4096, 100000} {
		m := message("user001", 1, size, now)
		if size > 300 && len(m) != size {
			t.Errorf("size %d: got %d bytes", size, len(m))
		}
		if !strings.Contains(string(m), "\n\n") {
			t.Errorf("size %d: no header/body separator", size)
		}
	}
}

func TestCertVerifies(t *testing.T) {
	certPEM, keyPEM, pool := TestCert(t)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*tls.Conn).Handshake()
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
	// The listener serves one handshake; the other names are checked against the leaf offline.
	for _, name := range []string{"localhost", "::1"} {
		if err := pair.Leaf.VerifyHostname(name); err != nil {
			t.Error(err)
		}
	}
}

func TestFreePortRejectsNonLoopback(t *testing.T) {
	if p := FreePort(t, netip.MustParseAddr("127.0.0.1")); p <= 0 {
		t.Fatalf("port %d", p)
	}
	if _, err := freePort(netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Fatal("non-loopback address accepted")
	}
}

func TestRandomLoopbackIPs(t *testing.T) {
	ips, err := randomLoopbackIPs(3)
	if err != nil {
		t.Fatal(err)
	}
	for i, ip := range ips {
		b := ip.As4()
		if b[0] != 127 || b[1] == 0 || b[3] != byte(11+i) {
			t.Errorf("ip %d = %v", i, ip)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`[["doveadmResponse",[{"username":"u","connections":"1","service":"imap","pids":"(1)","ips":"(127.0.0.1)"}],{"username":"v","connections":"x"},"t"]]`))
	f.Add([]byte(`[["error",{"type":"exitCode", "exitCode":64},"t"]]`))
	f.Add([]byte(`[["doveadmResponse",[],"t"]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		elems, err := parseResponse(data)
		if err != nil {
			return
		}
		rows, err := parseWho(elems)
		if err != nil {
			return
		}
		// Whatever parsed must survive a JSON round trip of its own.
		if _, err := json.Marshal(rows); err != nil {
			t.Fatal(err)
		}
	})
}
