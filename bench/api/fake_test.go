package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/doveadm"
	"github.com/usher-mail/usher/internal/testenv"
)

// fakeServices is the rest of usher as the API layer sees it: fixed
// sessions and a director-admin peer answering from memory. Benchmarks over
// it measure the HTTP layer, command dispatch and JSON output only.
type fakeServices struct {
	sessions []doveadm.Conn
}

var errUnsupported = errors.New("not used by the benchmark")

func (f *fakeServices) DialAdmin(ctx context.Context, socketPath string) (net.Conn, error) {
	a, b := net.Pipe()
	go fakeAdmin(b)
	return a, nil
}

// fakeAdmin answers HOST-LIST like a director with two backends.
func fakeAdmin(c net.Conn) {
	defer c.Close()
	w := bufio.NewWriter(c)
	w.WriteString("VERSION\tdirector-doveadm\t1\t0\n")
	w.Flush()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch cmd, _, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "\t"); cmd {
		case "VERSION":
			continue
		case "HOST-LIST":
			w.WriteString("127.0.0.11\t100\t5000\t\tU\t0\n127.0.0.12\t100\t5000\t\tU\t0\n\n")
		default:
			return
		}
		if w.Flush() != nil {
			return
		}
	}
}

func (f *fakeServices) UserHash(user string) (uint32, error)           { return 0, errUnsupported }
func (f *fakeServices) UserList(ctx context.Context) ([]string, error) { return nil, errUnsupported }
func (f *fakeServices) Sessions() []doveadm.Conn                       { return f.sessions }
func (f *fakeServices) KickSessions(func(doveadm.Conn) bool) []string  { return nil }
func (f *fakeServices) Penalties() []doveadm.PenaltyRecord             { return nil }
func (f *fakeServices) Metrics(bool) []doveadm.Metric                  { return nil }
func (f *fakeServices) OldStatsDump(string, string) (doveadm.OldStats, error) {
	return doveadm.OldStats{}, errUnsupported
}
func (f *fakeServices) OldStatsReset()                         {}
func (f *fakeServices) ProxySessions() []doveadm.ProxySession  { return nil }
func (f *fakeServices) ProxyKick([]string, string, string) int { return 0 }
func (f *fakeServices) StopService(names []string) []string    { return names }
func (f *fakeServices) Reload() error                          { return errUnsupported }
func (f *fakeServices) Stop()                                  {}

// fakeSessions are n IMAP sessions of n distinct users from 256 client IPs,
// so who prints n rows.
func fakeSessions(n int) []doveadm.Conn {
	out := make([]doveadm.Conn, n)
	for i := range out {
		out[i] = doveadm.Conn{
			User:    fmt.Sprintf("user%05d@example.com", i),
			Service: "imap",
			IP:      fmt.Sprintf("127.1.0.%d", i%256),
			Pid:     100000 + i,
		}
	}
	return out
}

// startFakeAPI serves doveadm.Server over fakeServices on loopback and
// returns the API URL.
func startFakeAPI(b *testing.B, sessions int) string {
	b.Helper()
	l := mustListen(b, testenv.RandomLoopback(10))
	srv := doveadm.NewServer(doveadm.Config{Password: apiPassword, BaseDir: b.TempDir()},
		&fakeServices{sessions: fakeSessions(sessions)})
	go srv.Serve(l)
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	return "http://" + l.Addr().String() + "/doveadm/v1"
}

func BenchmarkAPILayer(b *testing.B) {
	url := startFakeAPI(b, benchSessions)
	c := newClient()
	for _, tc := range []struct {
		cmd  string
		rows int
	}{{"directorStatus", 2}, {"who", benchSessions}} {
		b.Run(tc.cmd, func(b *testing.B) {
			req := body(tc.cmd)
			data, err := call(c, url, req)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := rows(data); err != nil || n != tc.rows {
				b.Fatalf("%s: %d rows (%v), want %d", tc.cmd, n, err, tc.rows)
			}
			b.SetBytes(int64(len(data)))
			runRequests(b, c, url, req)
		})
	}
}
