package ring

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuf collects log lines from several goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRingNeedsSecret: a ring of several directors does not start with
// neither a secret nor mutual TLS (TestTLS runs one with both).
func TestRingNeedsSecret(t *testing.T) {
	addrs := freeAddrs(t, 2)
	_, err := Open(Config{Dir: t.TempDir(), Self: addrs[0], Peers: addrs, Logger: quiet(), JoinTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "director_ring_secret") {
		t.Fatalf("open without a secret: %v", err)
	}
}

// TestForgedJoin: a dialer without the secret, or with a wrong one, is
// refused at the handshake; one with the secret may not make an address
// outside director_servers a voter, nor ask for another address than its
// own. Each refusal is logged and the ring keeps its two voters.
func TestForgedJoin(t *testing.T) {
	var logs logBuf
	tr := newTestRing(t, 2, nil, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	target := tr.addrs[0]
	join := func(secret, self, id, addr string) error {
		m := &mux{self: self, secret: []byte(secret), log: quiet(), peers: newPeerTable(time.Now)}
		c := &rpcClient{m: m, idle: map[string][]*rpcConn{}}
		defer c.closeAll()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.call(ctx, target, opJoin, appendStr(appendStr(nil, id), addr))
		return err
	}
	forged := "127.66.66.66:9090" // loopback: a pre-fix run dials it
	for _, secret := range []string{"", "wrong"} {
		if err := join(secret, forged, forged, forged); err == nil {
			t.Errorf("join with secret %q accepted", secret)
		}
	}
	eventually(t, "rejected handshakes logged", func() bool {
		return strings.Count(logs.String(), "ring: rejected connection") >= 2
	})
	if err := join("s3cret", forged, forged, forged); err == nil || !strings.Contains(err.Error(), "join refused") {
		t.Errorf("join of an unlisted address: %v", err)
	}
	// A listed director may only ask for itself.
	if err := join("s3cret", tr.addrs[1], forged, forged); err == nil || !strings.Contains(err.Error(), "join refused") {
		t.Errorf("join for another address: %v", err)
	}
	if n := strings.Count(logs.String(), "ring: join refused"); n != 2 {
		t.Errorf("%d refused joins logged, want 2:\n%s", n, logs.String())
	}
	servers, err := tr.rings[0].Node().Servers()
	if err != nil || len(servers) != 2 {
		t.Fatalf("voters after forged joins: %v %v", servers, err)
	}
	// The raft stream needs the secret too.
	nc, err := net.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := clientHandshake(nc, nil, forged, protoRaft); err == nil {
		t.Error("raft stream opened without the secret")
	}
}
