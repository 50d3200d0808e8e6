package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/proxyproto"
	"github.com/usher-mail/usher/internal/testenv"
)

// nextToUsher is the address .last in the /24 that startUsher will put usher in (.10), for
// what must be known before usher starts: the balancer's address and usher's extra ports.
func nextToUsher(cl *testenv.Cluster, last byte) netip.Addr {
	a := cl.Backends()[0].IP.As4()
	a[3] = last
	return netip.AddrFrom4(a)
}

// haproxyListeners is usher config adding a listener with haproxy = yes to each service of
// ports (service name -> port), trusting balancer only.
func haproxyListeners(balancer netip.Addr, ports map[string]int) string {
	conf := "haproxy_trusted_networks = " + balancer.String() + "/32\n"
	for svc, port := range ports {
		conf += testenv.Service{Name: svc, Inet: []testenv.Listener{{Name: "haproxy", Port: port, HAProxy: true}}}.String()
	}
	return conf
}

// HAProxy 2.6 in TCP mode in front of usher, with send-proxy and send-proxy-v2: a client at
// .77 logs in over IMAP and POP3 through it, and the backends' who, usher's who and usher's
// penalties all name .77. A header from an untrusted address is refused with a log line, a
// listener without haproxy takes a PROXY line as a bad command, a v2 SSL TLV makes the
// connection secure for plaintext logins, and LOCAL keeps the socket's address.
func TestHAProxyInFrontOfUsher(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{Users: 10})
	usherIP, balancer, client := nextToUsher(cl, 10), nextToUsher(cl, 20), nextToUsher(cl, 77)
	imapH, pop3H, sieveH := testenv.FreePort(t, usherIP), testenv.FreePort(t, usherIP), testenv.FreePort(t, usherIP)
	u := startUsher(t, cl, usherOpts{extra: haproxyListeners(balancer,
		map[string]int{"imap-login": imapH, "pop3-login": pop3H, "managesieve-login": sieveH})})

	front := map[string]netip.AddrPort{}
	var fes []testenv.HAProxyFrontend
	for _, f := range []struct {
		name, mode string
		port       int
	}{{"imap v1", "send-proxy", imapH}, {"imap v2", "send-proxy-v2", imapH}, {"pop3 v1", "send-proxy", pop3H}, {"pop3 v2", "send-proxy-v2", pop3H}} {
		front[f.name] = netip.AddrPortFrom(balancer, uint16(testenv.FreePort(t, balancer)))
		fes = append(fes, testenv.HAProxyFrontend{Bind: front[f.name], Server: u.Addr(f.port), Source: balancer, Opts: f.mode})
	}
	testenv.StartHAProxy(t, fes...)

	users := map[string]string{"imap v1": "user001", "imap v2": "user002", "pop3 v1": "user003", "pop3 v2": "user004"}
	for _, name := range []string{"imap v1", "imap v2"} {
		c := dialFrom(t, client, front[name].String())
		if _, tagged := c.cmd(t, "a", "LOGIN "+users[name]+" pass"); !strings.HasPrefix(tagged, "a OK") {
			t.Fatalf("%s login: %q", name, tagged)
		}
	}
	for _, name := range []string{"pop3 v1", "pop3 v2"} {
		p := dialPOP3(t, client, front[name].String())
		if r := p.cmd(t, "USER "+users[name]); r != "+OK" {
			t.Fatalf("%s USER: %q", name, r)
		}
		if r := p.cmd(t, "PASS pass"); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("%s login: %q", name, r)
		}
	}
	for name, user := range users {
		found := false
		for _, row := range backendOf(t, u, cl, user).Who(t) {
			if row.Username == user {
				found = len(row.IPs) == 1 && row.IPs[0] == client
			}
		}
		if !found {
			t.Errorf("%s: the backend's who does not show %s from %s", name, user, client)
		}
	}
	who := u.mustAPI("who", nil)
	if len(who) != 4 {
		t.Fatalf("usher who = %v, want the 4 sessions", who)
	}
	for _, row := range who {
		if row["ips"] != "("+client.String()+")" {
			t.Errorf("usher who row %v, want ips (%s)", row, client)
		}
	}

	// A failed login through the balancer is the carried client's penalty.
	bad := nextToUsher(cl, 79)
	c := dialFrom(t, bad, front["imap v2"].String())
	if _, tagged := c.cmd(t, "a", "LOGIN user005 wrong"); !strings.HasPrefix(tagged, "a NO") {
		t.Fatalf("wrong password: %q", tagged)
	}
	if rows := u.mustAPI("penalty", nil); len(rows) != 1 || rows[0]["IP"] != bad.String() {
		t.Errorf("penalty = %v, want %s", rows, bad)
	}

	// A header from outside haproxy_trusted_networks: closed unread, with a log line.
	untrusted := nextToUsher(cl, 21)
	raw := dialRaw(t, untrusted, u.Addr(imapH))
	fmt.Fprintf(raw, "PROXY TCP4 192.0.2.1 %s 1000 143\r\n", usherIP)
	if l := readLine(t, raw); !strings.HasPrefix(l, "EOF") {
		t.Errorf("untrusted sender got %q, want the connection closed", l)
	}
	waitFor(t, "the refusal in usher's log", func() bool {
		return logLineHas(u.Log.String(), "haproxy: Client not trusted", "rip="+untrusted.String())
	})

	// Listeners without haproxy = yes: the PROXY line is the protocol's bad command.
	plain := dialFrom(t, untrusted, u.Addr(u.IMAPPort))
	if _, tagged := plain.cmd(t, "PROXY", "TCP4 192.0.2.1 192.0.2.2 1000 143"); !strings.HasPrefix(tagged, "PROXY BAD") {
		t.Errorf("IMAP without haproxy: %q, want PROXY BAD", tagged)
	}
	if r := dialPOP3(t, untrusted, u.Addr(u.POP3Port)).cmd(t, "PROXY TCP4 192.0.2.1 192.0.2.2 1000 110"); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("POP3 without haproxy: %q, want -ERR", r)
	}
	// ManageSieve: a header on its haproxy listener gets the greeting; without haproxy a NO.
	for _, tc := range []struct {
		port       int
		send, want string
	}{
		{sieveH, "PROXY TCP4 192.0.2.1 192.0.2.2 1000 4190\r\n", "OK "},
		{u.Sieve, "PROXY TCP4 192.0.2.1 192.0.2.2 1000 4190\r\n", "NO "},
	} {
		raw := dialRaw(t, balancer, u.Addr(tc.port))
		raw.Write([]byte(tc.send))
		l := ""
		for !strings.HasPrefix(l, "OK") && !strings.HasPrefix(l, "NO") && !strings.HasPrefix(l, "EOF") {
			l = readLine(t, raw)
		}
		if tc.want == "NO " && strings.HasPrefix(l, "OK") { // the greeting; the answer comes next
			l = readLine(t, raw)
		}
		if !strings.HasPrefix(l, tc.want) {
			t.Errorf("ManageSieve port %d after %q: %q, want %s", tc.port, tc.send, l, tc.want)
		}
	}

	// Hand-made v2 headers from the balancer's address: an Internet client is refused plaintext
	// logins unless the balancer says it came over TLS; LOCAL keeps the balancer's own
	// (loopback) address, which may log in in plaintext.
	internet := netip.MustParseAddrPort("192.0.2.9:40000")
	dst := netip.AddrPortFrom(usherIP, uint16(imapH))
	for _, tc := range []struct {
		what, want string
		hdr        []byte
	}{
		{"v2 without TLS", "LOGINDISABLED", proxyproto.AppendV2(nil, internet, dst, false, "")},
		{"v2 with the SSL TLV", "AUTH=PLAIN", proxyproto.AppendV2(nil, internet, dst, true, "TLSv1.3")},
		{"v2 LOCAL", "AUTH=PLAIN", proxyproto.AppendLocalV2(nil)},
	} {
		raw := dialRaw(t, balancer, u.Addr(imapH))
		raw.Write(append(tc.hdr, "a CAPABILITY\r\n"...))
		var caps string
		for l := ""; !strings.HasPrefix(l, "a ") && !strings.HasPrefix(l, "EOF"); l = readLine(t, raw) {
			if strings.HasPrefix(l, "* CAPABILITY") {
				caps = l
			}
		}
		if !strings.Contains(caps, tc.want) {
			t.Errorf("%s: capabilities %q, want %s", tc.what, caps, tc.want)
		}
	}
}

// TestBackendProxyProtocolV2: backend_proxy_protocol = v2 in front of Dovecot backends that
// listen with haproxy = yes and trust no proxy's ID or XCLIENT, so the header is the only way
// the client's address reaches them. The chain client (TLS) -> HAProxy (terminates TLS,
// send-proxy-v2-ssl) -> usher -> Dovecot shows the client's address in the backend's who and a
// secured login in its log; LMTP through HAProxy (send-proxy) shows the client in the
// backend's log; a plaintext client is not secured there, one on usher's own TLS is.
func TestBackendProxyProtocolV2(t *testing.T) {
	t.Parallel()
	cl := testenv.StartDovecot(t, testenv.Options{N: 1, Users: 5, HAProxy: true})
	b := cl.Backends()[0]
	usherIP, balancer, client := nextToUsher(cl, 10), nextToUsher(cl, 20), nextToUsher(cl, 77)
	imapH, lmtpH := testenv.FreePort(t, usherIP), testenv.FreePort(t, usherIP)
	u := startUsher(t, cl, usherOpts{extra: "backend_proxy_protocol = v2\n" +
		haproxyListeners(balancer, map[string]int{"imap-login": imapH, "lmtp": lmtpH})})

	cert, key, _ := testenv.TestCertFor(t, balancer)
	pem := filepath.Join(t.TempDir(), "balancer.pem")
	if err := os.WriteFile(pem, append(cert, key...), 0o600); err != nil {
		t.Fatal(err)
	}
	imapsFront := netip.AddrPortFrom(balancer, uint16(testenv.FreePort(t, balancer)))
	lmtpFront := netip.AddrPortFrom(balancer, uint16(testenv.FreePort(t, balancer)))
	testenv.StartHAProxy(t,
		testenv.HAProxyFrontend{Bind: imapsFront, BindOpts: "ssl crt " + pem, Server: u.Addr(imapH), Source: balancer, Opts: "send-proxy-v2-ssl"},
		testenv.HAProxyFrontend{Bind: lmtpFront, Server: u.Addr(lmtpH), Source: balancer, Opts: "send-proxy"})

	login := func(src netip.Addr, addr, user string, useTLS bool) {
		t.Helper()
		nc := dialRaw(t, src, addr)
		if useTLS {
			tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true}) // trust is not what this tests
			if err := tc.Handshake(); err != nil {
				t.Fatalf("TLS to %s: %v", addr, err)
			}
			nc = tc
		}
		c := &rawIMAP{newLineConn(nc)}
		if l := c.line(t); !strings.HasPrefix(l, "* OK") {
			t.Fatalf("greeting %q", l)
		}
		if _, tagged := c.cmd(t, "a", "LOGIN "+user+" pass"); !strings.HasPrefix(tagged, "a OK") {
			t.Fatalf("%s login through %s: %q", user, addr, tagged)
		}
	}
	login(client, imapsFront.String(), "user001", true)
	plainClient, tlsClient := nextToUsher(cl, 78), nextToUsher(cl, 79)
	login(plainClient, u.Addr(u.IMAPPort), "user002", false)
	login(tlsClient, u.Addr(u.IMAPS), "user004", true)

	lc := dialRaw(t, client, lmtpFront.String())
	l := &lmtpConn{t: t, c: lc, r: bufio.NewReader(lc)}
	l.expect("220 ")
	for _, step := range [][2]string{{"LHLO e2e", "250"}, {"MAIL FROM:<a@b.test>", "250"},
		{"RCPT TO:<user003@anchor.test>", "250"}, {"DATA", "354"}, {"Subject: proxied\r\n\r\nx\r\n.", "250"}} {
		l.send(step[0])
		l.expect(step[1])
	}

	rows := b.Who(t)
	ips := map[string]netip.Addr{}
	for _, r := range rows {
		if len(r.IPs) == 1 {
			ips[r.Username] = r.IPs[0]
		}
	}
	if ips["user001"] != client || ips["user002"] != plainClient || ips["user004"] != tlsClient {
		t.Errorf("backend who = %+v, want user001 from %s, user002 from %s, user004 from %s", rows, client, plainClient, tlsClient)
	}
	var log string
	waitFor(t, "the backend logging the logins and the delivery", func() bool {
		data, _ := os.ReadFile(b.LogPath)
		log = string(data)
		return strings.Contains(log, "Login: user=<user004>") && strings.Contains(log, "Connect from "+client.String())
	})
	if !logLineHas(log, "Login: user=<user001>", "rip="+client.String(), "secured") {
		t.Errorf("backend log lacks user001's secured login from %s", client)
	}
	if !logLineHas(log, "Login: user=<user004>", "rip="+tlsClient.String(), "secured") {
		t.Errorf("backend log lacks user004's secured login from %s", tlsClient)
	}
	if logLineHas(log, "Login: user=<user002>", "secured") || !logLineHas(log, "Login: user=<user002>", "rip="+plainClient.String()) {
		t.Errorf("backend log: user002's plaintext login from %s is missing or secured", plainClient)
	}
}

// dialRaw connects from src.
func dialRaw(t *testing.T, src netip.Addr, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readLine reads one line within a bound; "EOF: ..." when the connection ended.
func readLine(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			return "EOF: " + err.Error()
		}
		if one[0] == '\n' {
			return strings.TrimRight(string(b), "\r")
		}
		b = append(b, one[0])
	}
}
