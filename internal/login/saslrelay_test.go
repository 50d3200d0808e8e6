package login

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/proxyproto"
)

func TestMechsIntersectionAndProbe(t *testing.T) {
	a, b := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	var m Mechs
	if got := m.Offered(); got != nil {
		t.Fatalf("nothing learned yet: %v", got)
	}
	m.Learn(a, []string{"PLAIN", "LOGIN", "xoauth2", "SCRAM-SHA-256", "OAUTHBEARER"})
	if got := m.Offered(); !slices.Equal(got, []string{"SCRAM-SHA-256", "XOAUTH2", "OAUTHBEARER"}) {
		t.Fatalf("one backend: %v", got)
	}
	m.Learn(b, []string{"PLAIN", "XOAUTH2"})
	if got := m.Offered(); !slices.Equal(got, []string{"XOAUTH2"}) {
		t.Fatalf("two backends: %v", got)
	}
	if m.Offers("SCRAM-SHA-256") || !m.Offers("XOAUTH2") {
		t.Fatal("Offers disagrees with Offered")
	}

	// A probe asks every host; one that cannot be asked counts for nothing, one no longer
	// listed is forgotten.
	probed := make(chan netip.Addr, 4)
	p := &Mechs{
		Hosts: func() []netip.Addr { return []netip.Addr{a, b} },
		Probe: func(_ context.Context, h netip.Addr) ([]string, error) {
			defer func() { probed <- h }()
			if h == b {
				return nil, errors.New("down")
			}
			return []string{"SCRAM-SHA-1", "OAUTHBEARER"}, nil
		},
	}
	p.Learn(netip.MustParseAddr("127.0.0.9"), []string{"PLAIN"})
	p.Refresh()
	for range 2 {
		select {
		case <-probed:
		case <-time.After(10 * time.Second):
			t.Fatal("probe did not run")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		done := !p.probing
		p.computed = time.Time{}
		p.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("probe did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := p.Offered(); !slices.Equal(got, []string{"SCRAM-SHA-1", "OAUTHBEARER"}) {
		t.Fatalf("after the probe: %v", got)
	}
}

func TestStartRelayAndChallenges(t *testing.T) {
	var asked []string
	answers := [][]byte{[]byte("n,,n=user001,r=abc"), []byte("c=biws,r=abcdef,p=xx")}
	ask := func(ir *string, challenge string) ([]byte, string, bool) {
		asked = append(asked, challenge)
		if len(answers) == 0 {
			return nil, "cancelled", false
		}
		r := answers[0]
		answers = answers[1:]
		return r, "", true
	}
	var replied []string
	reply := func(line string) error { replied = append(replied, line); return nil }
	cr, _, end := StartRelay("SCRAM-SHA-256", nil, ask, reply)
	if end != SASLDone || cr.User != "user001" || cr.Relay == nil || string(cr.Relay.First) != "n,,n=user001,r=abc" {
		t.Fatalf("start: %v %+v", end, cr)
	}
	b64 := base64.StdEncoding.EncodeToString
	resp, res := cr.Relay.Challenge(b64([]byte("r=abcdef,s=c2FsdA==,i=4096")))
	if res != nil || resp != b64([]byte("c=biws,r=abcdef,p=xx")) {
		t.Fatalf("round 1: %q %v", resp, res)
	}
	if r := cr.Relay.Unavailable("x"); retryable(r) {
		t.Error("a failure after a challenge reached the client is retried")
	}
	if _, res := cr.Relay.Challenge("not base64!"); res == nil || res.Kind != ResultUnavailable || retryable(*res) {
		t.Fatalf("a challenge that is not base64: %+v", res)
	}
	_, res = cr.Relay.Challenge(b64([]byte("v=sig")))
	if res == nil || res.Kind != ResultAnswered || res.Text != "cancelled" || retryable(*res) || !slices.Equal(replied, []string{"cancelled"}) {
		t.Fatalf("cancel: %+v, replied %q", res, replied)
	}
	if !slices.Equal(asked, []string{"", "r=abcdef,s=c2FsdA==,i=4096", "v=sig"}) {
		t.Fatalf("challenges: %q", asked)
	}

	// Nothing reached the client yet: a backend failure may be retried elsewhere.
	x := &Exchange{ask: func(*string, string) ([]byte, string, bool) { return nil, "", true }}
	if r := x.Unavailable("x"); !retryable(r) {
		t.Error("a failure before any challenge is not retried")
	}
	for range MaxRelayRounds {
		if _, res := x.Challenge(""); res != nil {
			t.Fatalf("round refused early: %+v", res)
		}
	}
	if _, res := x.Challenge(""); res == nil || res.Kind != ResultAuthFailed {
		t.Fatalf("round %d: %+v", MaxRelayRounds+1, res)
	}

	if _, _, end := StartRelay("XOAUTH2", nil, func(*string, string) ([]byte, string, bool) {
		return []byte("user=\x01auth=Bearer x\x01\x01"), "", true
	}, reply); end != SASLMalformed {
		t.Fatalf("XOAUTH2 without a user: %v", end)
	}
}

// TestProbeBackendProxyHeader: with backend_proxy_protocol the probe opens with a PROXY v2
// LOCAL header (a backend listening with haproxy = yes refuses a connection without one),
// then reads the mechanisms.
func TestProbeBackendProxyHeader(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan proxyproto.Header, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h, err := proxyproto.Read(c)
		if err == nil {
			got <- h
		}
		c.Write([]byte("MECHS XOAUTH2\r\n"))
	}()
	cfg := Config{BackendPort: l.Addr().(*net.TCPAddr).Port, BackendProxyProtocol: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mechs, err := cfg.ProbeBackend(ctx, netip.MustParseAddr("127.0.0.1"), func(_ net.Conn, br *bufio.Reader) ([]string, error) {
		line, err := br.ReadString('\n')
		return strings.Fields(strings.TrimPrefix(line, "MECHS ")), err
	})
	if err != nil || !slices.Equal(mechs, []string{"XOAUTH2"}) {
		t.Fatalf("probe: %v %v", mechs, err)
	}
	select {
	case h := <-got:
		if h.Version != 2 || !h.Local {
			t.Fatalf("header %+v, want v2 LOCAL", h)
		}
	default:
		t.Fatal("no PROXY header before the probe's dialogue")
	}
}
