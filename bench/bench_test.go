package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// tinyParams keeps the harness from rotting in CI: every load and contender, a few hundred
// operations, well under a minute.
func tinyParams() params {
	return params{
		Mode: "tiny", Users: 20,
		StormClients: 2, StormTime: 300 * time.Millisecond, StormMax: 200,
		LatencyTime: 200 * time.Millisecond, LatencyMax: 50,
		IdleSizes: []int{50}, IdlePar: 8, IdleTime: 20 * time.Second, IdleSettle: 50 * time.Millisecond,
		BulkStreams: 1, BulkMsgs: 2, BulkMsgSize: 256 << 10, BulkRounds: 1,
		TLSClients: 2, TLSTime: 300 * time.Millisecond, TLSMax: 100,
	}
}

// TestHarness runs the whole harness (quick mode with USHER_BENCH_QUICK=1, else tiny) and checks
// that every contender that could start completed every load. Figures are not asserted: they
// depend on the machine.
func TestHarness(t *testing.T) {
	if errLoads != nil {
		t.Skip(errLoads)
	}
	o := options{params: tinyParams(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if os.Getenv("USHER_BENCH_QUICK") == "1" {
		o.params = quickParams()
	}
	if testing.Verbose() {
		o.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var buf bytes.Buffer
	if _, err := run(o, &buf); err != nil {
		t.Fatal(err)
	}
	report := buf.String()
	t.Log("\n" + report)
	for _, l := range strings.Split(report, "\n") {
		if strings.Contains(l, "ERROR:") {
			t.Errorf("load failed: %s", l)
		}
	}
	if !strings.Contains(report, "| login storm | usher | ") {
		t.Errorf("no usher row in the report")
	}
}

// TestHarnessPinned runs the login storm with the contenders on their own CPU (-pin), and bulk,
// which a pinned run also takes on every CPU and then pins again.
func TestHarnessPinned(t *testing.T) {
	if errLoads != nil {
		t.Skip(errLoads)
	}
	if runtime.NumCPU() < 2 {
		t.Skip("pinning needs two CPUs")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("no taskset")
	}
	o := options{params: tinyParams(), pin: true, only: []string{"direct", "usher"}, loads: []string{"login storm", "bulk"},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var buf bytes.Buffer
	if _, err := run(o, &buf); err != nil {
		t.Fatal(err)
	}
	rep := buf.String()
	if !strings.Contains(rep, "CPU µs/login") || !strings.Contains(rep, "| bulk FETCH | usher |") ||
		!strings.Contains(rep, "| bulk FETCH, pinned | usher |") || strings.Contains(rep, "ERROR:") {
		t.Errorf("report:\n%s", rep)
	}
}

func TestFakeBackendLogin(t *testing.T) {
	fb, port, err := startFakeBackends(slog.New(slog.NewTextHandler(io.Discard, nil)),
		[]netip.Addr{netip.MustParseAddr("127.77.1.250")}, "pw", nil, 2, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	tg := target{addr: netip.AddrPortFrom(netip.MustParseAddr("127.77.1.250"), uint16(port)), timeout: 10 * time.Second}
	cl, err := dial(tg, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	if err := cl.cmd("x", "SELECT INBOX"); err == nil {
		t.Fatal("SELECT before login succeeded")
	}
	if err := cl.login("u", "bad"); err == nil {
		t.Fatal("wrong password accepted")
	}
	// literal form, as a proxy sends a password it cannot quote
	if err := cl.cmd("l", "LOGIN {1+}\r\nu \"pw\""); err != nil {
		t.Fatal(err)
	}
	if err := cl.cmd("s", "SELECT INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := cl.cmd("f", "FETCH 1:* BODY[]"); err != nil {
		t.Fatal(err)
	}
	if cl.n != 2000 {
		t.Fatalf("fetched %d bytes of literals, want 2000", cl.n)
	}
}

func TestAuthenticatePlain(t *testing.T) {
	fb := &fakeBackend{password: "pw", msgs: 1, body: messageBody(64)}
	for _, tc := range []struct {
		args string
		want bool
	}{
		{"PLAIN AHUAcHc=", true}, // "\0u\0pw"
		{"PLAIN AHUAbm8=", false},
		{"PLAIN !!!", false},
		{"LOGIN", false},
	} {
		c1, c2 := net.Pipe()
		s := &session{fb: fb, c: c1}
		got, err := s.authenticate(tc.args)
		c1.Close()
		c2.Close()
		if err != nil || got != tc.want {
			t.Errorf("authenticate(%q) = %v, %v; want %v", tc.args, got, err, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(101-i))
	}
	if p := percentile(d, 50); p != 50 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(d, 99); p != 99 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(nil, 50); p != 0 {
		t.Errorf("empty p50 = %v", p)
	}
}

func TestClampIdle(t *testing.T) {
	got, note := clampIdle([]int{10000, 50000}, 20000)
	if len(got) != 1 || got[0] != 9744 || note == "" {
		t.Errorf("clampIdle = %v, %q", got, note)
	}
	got, note = clampIdle([]int{10000, 50000}, 1<<20)
	if len(got) != 2 || note != "" {
		t.Errorf("clampIdle with room = %v, %q", got, note)
	}
}

// FuzzFakeBackend feeds arbitrary client bytes to one backend session: it must neither panic
// nor hang.
func FuzzFakeBackend(f *testing.F) {
	for _, s := range []string{
		"a LOGIN u pw\r\nb SELECT INBOX\r\nc FETCH 1:* BODY[]\r\nd LOGOUT\r\n",
		"a LOGIN {1}\r\nu {2}\r\npw\r\n",
		"a AUTHENTICATE PLAIN\r\nAHUAcHc=\r\n",
		"a ID (\"x\" \"y\")\r\nb CAPABILITY\r\nc NOOP\r\n",
		"a STARTTLS\r\n",
		"a LOGIN \"u\\\"\" \"p\r\n{99999999999}\r\n",
	} {
		f.Add([]byte(s))
	}
	fb := &fakeBackend{password: "pw", msgs: 2, body: messageBody(100)}
	f.Fuzz(func(t *testing.T, in []byte) {
		c1, c2 := net.Pipe()
		// the fake backend has no timeouts of its own (idle sessions must live): bound it here
		c1.SetDeadline(time.Now().Add(5 * time.Second))
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, c2); close(done) }()
		go func() {
			c2.Write(in)
			c2.Close()
		}()
		fb.serve(c1)
		c1.Close()
		<-done
	})
}

func FuzzLiteralSize(f *testing.F) {
	for _, s := range []string{"* 1 FETCH (BODY[] {12}\r\n", "{", "}", "{-1}", "{99999999999999999999}", "a OK"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, ok := literalSize(s); ok && n < 0 {
			t.Fatalf("negative literal %d", n)
		}
		if n, _, ok := trailingLiteral(s); ok && (n < 0 || n > 8192) {
			t.Fatalf("literal size %d out of range", n)
		}
		fields(s)
	})
}

func TestSplitLoads(t *testing.T) {
	got := splitLoads("login storm, Dovecot backends,idle,bulk")
	want := []string{"login storm, Dovecot backends", "idle", "bulk"}
	if !slices.Equal(got, want) {
		t.Fatalf("splitLoads = %q, want %q", got, want)
	}
	if !wanted("login storm, Dovecot backends", got) || wanted("login storm STARTTLS", got) {
		t.Fatal("wanted does not select exactly the named load")
	}
}

// TestRealBackendsPerContender: on a load in front of real Dovecot backends every contender
// meets backends of its own, started for it, so none logs in users that a contender before it
// already created (a first login creates the mail store, several times a later one's work).
func TestRealBackendsPerContender(t *testing.T) {
	dir, err := os.MkdirTemp("", "usher-bench-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // Dovecot's unprivileged processes walk into it
	e := &env{log: slog.New(slog.NewTextHandler(io.Discard, nil)), dir: dir, procs: newProcSet()}
	defer e.procs.stopAll()
	var seen [][]int // each contender's backend processes, while its load runs
	l := load{name: "real", real: true, run: func(le *env, p params, c contender, in *instance, tg target) result {
		seen = append(seen, slices.Clone(le.backendPIDs))
		if _, err := cycle(tg, userName(2), false); err != nil {
			return result{Err: err.Error()}
		}
		return result{}
	}}
	direct := contender{name: "direct", start: startDirect}
	rs := runLoad(e, tinyParams(), l, []contender{direct, direct})
	for _, r := range rs {
		if r.Skip != "" {
			if os.Getenv("USHER_REQUIRE_DOVECOT") == "1" {
				t.Fatal(r.Skip)
			}
			t.Skip(r.Skip)
		}
		if r.Err != "" {
			t.Fatal(r.Err)
		}
	}
	if len(seen) != 2 || len(seen[0]) == 0 {
		t.Fatalf("backend processes seen by the contenders: %v", seen)
	}
	for _, pid := range seen[1] {
		if slices.Contains(seen[0], pid) {
			t.Errorf("the second contender met the first one's backends: %v then %v", seen[0], seen[1])
		}
	}
}

func TestPickContenders(t *testing.T) {
	var names []string
	for _, c := range pickContenders([]string{"dovecot-director", "nope", "usher"}) {
		names = append(names, c.name)
	}
	if !slices.Equal(names, []string{"dovecot-director", "usher"}) {
		t.Fatalf("pickContenders = %q", names)
	}
	if len(pickContenders(nil)) != len(contenders()) {
		t.Fatal("no -only: not every contender")
	}
}
