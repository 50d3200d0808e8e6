package stats

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func us(n int) time.Duration { return time.Duration(n) * time.Microsecond }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func row(m Metric, fields []string) string {
	var b strings.Builder
	b.WriteString(m.Name)
	for _, f := range fields {
		v, ok := m.Field(f)
		if !ok {
			v = "?"
		}
		fmt.Fprintf(&b, " %s=%s", f, v)
	}
	return b.String()
}

// The numbers of golden case 274 (statsDump on backend b1): the three
// SELECT durations and three auth successes reproduce its rows exactly.
func TestMetricsGolden274(t *testing.T) {
	s := New(nil)
	for _, v := range []int{5206, 5315, 5849} {
		s.Command("imap", "select", us(v))
	}
	for _, v := range []int{131, 135, 144} {
		s.AuthSuccess("imap", us(v))
	}
	got := s.Metrics(false)
	want := []string{
		"auth_success count=3 sum=410 min=131 max=144 avg=136.67 median=135 stddev=5.44 %95=144",
		"auth_failure count=0 sum=0 min=0 max=0 avg=0.00 median=0 stddev=0.00 %95=0",
		"imap_command count=3 sum=16370 min=5206 max=5849 avg=5456.67 median=5315 stddev=280.97 %95=5849",
		"imap_command_SELECT count=3 sum=16370 min=5206 max=5849 avg=5456.67 median=5315 stddev=280.97 %95=5849",
		"proxy_session_finished count=0 sum=0 min=0 max=0 avg=0.00 median=0 stddev=0.00 %95=0",
	}
	if len(got) != len(want) {
		t.Fatalf("%d metrics, want %d", len(got), len(want))
	}
	for i := range want {
		if r := row(got[i], DefaultFields); r != want[i] {
			t.Errorf("row %d:\n got %s\nwant %s", i, r, want[i])
		}
	}
}

func TestMedianEvenCountAndPercentiles(t *testing.T) {
	s := New(nil)
	for _, v := range []int{40, 10, 30, 20} {
		s.AuthFailure("imap", us(v))
	}
	m := s.Metrics(false)[1]
	for f, want := range map[string]string{
		"median": "25", "%50": "20", "%75": "30", "%76": "40", "%100": "40", "%0": "10",
		"%25": "10", "%26": "20", "variance": "125.00", "stddev": "11.18",
	} {
		if got, ok := m.Field(f); !ok || got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if _, ok := m.Field("bogus"); ok {
		t.Error("unknown field accepted")
	}
	if _, ok := m.Field("%x"); ok {
		t.Error("bad percentile accepted")
	}
}

func TestMetricsReset(t *testing.T) {
	s := New(nil)
	s.Command("imap", "LIST", us(5))
	s.SessionFinished("imap", time.Second, 1, 2)
	first := s.Metrics(true)
	if first[2].Count != 1 || first[4].Count != 1 {
		t.Fatalf("reset dump lost values: %+v", first)
	}
	after := s.Metrics(false)
	if len(after) != 5 || after[3].Name != "imap_command_LIST" {
		t.Fatalf("sub-metric gone after reset: %+v", after)
	}
	for _, m := range after {
		if m.Count != 0 || m.Sum != 0 || m.Max != 0 {
			t.Fatalf("%s not reset: %+v", m.Name, m)
		}
	}
}

func TestReservoirBounded(t *testing.T) {
	s := New(nil)
	for i := range 10 * sampleCount {
		s.AuthSuccess("imap", us(i+1))
	}
	m := s.Metrics(false)[0]
	if m.Count != 10*sampleCount || m.Min != 1 || m.Max != 10*sampleCount || len(m.samples) != sampleCount {
		t.Fatalf("count=%d min=%d max=%d samples=%d", m.Count, m.Min, m.Max, len(m.samples))
	}
}

func TestSubMetricNamesBounded(t *testing.T) {
	s := New(nil)
	for i := range 2 * maxSubMetrics {
		s.Command("imap", fmt.Sprintf("x %d", i), us(1))
	}
	ms := s.Metrics(false)
	if len(ms) != 4+maxSubMetrics {
		t.Fatalf("%d metrics", len(ms))
	}
	if ms[3].Name != "imap_command_X_0" {
		t.Fatalf("sub-metric name %q", ms[3].Name)
	}
	if ms[2].Count != 2*maxSubMetrics {
		t.Fatalf("parent count %d", ms[2].Count)
	}
}

func TestOldStatsGlobal(t *testing.T) {
	c := &clock{t: time.Unix(1_795_717_625, 0)}
	s := New(c.now)
	h, rows, err := s.OldStats("global")
	if err != nil || len(rows) != 1 {
		t.Fatalf("global: %v %v", rows, err)
	}
	if len(h) != 5+18+6 || h[0] != "reset_timestamp" || h[5] != "user_cpu" || h[23] != "auth_successes" {
		t.Fatalf("header %v", h)
	}
	m := asMap(h, rows[0])
	if m["reset_timestamp"] != "1795717625" || m["last_update"] != "0.000000" || m["user_cpu"] != "0.0" || m["read_bytes"] != "0" {
		t.Fatalf("fresh row %v", m)
	}

	c.set(time.Unix(1_795_717_700, 5000))
	s.SessionStart("imap")
	s.SessionStart("pop3")
	s.Login("imap")
	s.Login("pop3")
	s.AuthSuccess("imap", us(100))
	s.AuthFailure("imap", us(100))
	s.Command("imap", "NOOP", us(1))
	s.SessionFinished("pop3", time.Second, 10, 20)
	_, rows, _ = s.OldStats("global")
	m = asMap(h, rows[0])
	want := map[string]string{"num_logins": "2", "num_cmds": "1", "num_connected_sessions": "1",
		"auth_successes": "1", "auth_failures": "1", "last_update": "1795717700.000005"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if g := s.Global(); g.BytesIn != 10 || g.BytesOut != 20 {
		t.Errorf("bytes %d/%d", g.BytesIn, g.BytesOut)
	}

	c.set(time.Unix(1_795_718_000, 0))
	s.ResetOld()
	_, rows, _ = s.OldStats("global")
	m = asMap(h, rows[0])
	want = map[string]string{"num_logins": "0", "num_cmds": "0", "num_connected_sessions": "1",
		"auth_successes": "0", "auth_failures": "0", "last_update": "0.000000", "reset_timestamp": "1795718000"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("after reset %s = %q, want %q", k, m[k], v)
		}
	}
}

func asMap(h, r []string) map[string]string {
	m := make(map[string]string, len(h))
	for i := range h {
		m[h[i]] = r[i]
	}
	return m
}

func TestOldStatsLevels(t *testing.T) {
	s := New(nil)
	s.Login("imap")
	for _, l := range []string{"command", "session", "user", "domain", "ip"} {
		h, rows, err := s.OldStats(l)
		if err != nil || len(rows) != 0 || len(h) == 0 {
			t.Errorf("%s: %v %v %v", l, h, rows, err)
		}
	}
	if h, _, _ := s.OldStats("user"); h[0] != "user" || h[3] != "num_logins" {
		t.Errorf("user header %v", h)
	}
	if _, _, err := s.OldStats("bogus"); err == nil {
		t.Error("bogus level accepted")
	}
}

func TestSessionFinishedNeverNegative(t *testing.T) {
	s := New(nil)
	s.SessionFinished("imap", time.Second, 0, 0)
	if g := s.Global(); g.NumConnectedSessions != 0 {
		t.Fatalf("connected %d", g.NumConnectedSessions)
	}
}

func TestPrometheus(t *testing.T) {
	s := New(nil)
	reg := prometheus.NewRegistry()
	s.Register(reg)
	s.Login("imap")
	s.Login("imap")
	s.SessionStart("imap")
	s.AuthFailure("pop3", us(3))
	s.SessionFinished("imap", time.Second, 100, 200)
	s.ResetOld() // must not touch the monotonic counters
	got := gather(t, reg)
	want := map[string]float64{
		`usher_logins_total{service="imap"}`:                                  2,
		`usher_logins_total{service="pop3"}`:                                  0,
		`usher_bytes_total{direction="in"}`:                                   100,
		`usher_bytes_total{direction="out"}`:                                  200,
		`usher_auth_failures_total{service="pop3"}`:                           1,
		`usher_sessions{service="imap"}`:                                      0,
		`usher_metric_events{metric="auth_failure"}`:                          1,
		`usher_metric_duration_microseconds{metric="proxy_session_finished"}`: 1e6,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// gather flattens the registry into "name{label="value"}" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

func TestConcurrent(t *testing.T) {
	s := New(nil)
	reg := prometheus.NewRegistry()
	s.Register(reg)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := []string{"imap", "pop3"}[g%2]
			for i := range 500 {
				s.SessionStart(svc)
				s.Login(svc)
				s.AuthSuccess(svc, us(i))
				s.Command(svc, fmt.Sprint("c", i%7), us(i))
				s.SessionFinished(svc, us(i), 1, 1)
				if i%100 == 0 {
					s.Metrics(i%200 == 0)
					s.OldStats("global")
					s.ResetOld()
					_, _ = reg.Gather()
				}
			}
		}()
	}
	wg.Wait()
	if g := s.Global(); g.NumConnectedSessions != 0 || g.BytesIn != 2000 {
		t.Fatalf("%+v", g)
	}
}

func BenchmarkHotPath(b *testing.B) {
	s := New(nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Command("imap", "SELECT", us(10))
		}
	})
}

// The login pipeline's view of Stats (internal/login declares it).
var _ interface {
	Login(service string)
	AuthSuccess(service string, d time.Duration)
	AuthFailure(service string, d time.Duration)
	Command(service, name string, d time.Duration)
	SessionFinished(service string, d time.Duration, in, out int64)
} = (*Stats)(nil)

// Pre-login commands count as commands but stay out of the imap_command metric, which on a
// Dovecot director is always zero (reference deployment, conformance case 257).
func TestPreloginCommand(t *testing.T) {
	s := New(time.Now)
	s.PreloginCommand("imap", "CAPABILITY", us(3))
	ms := s.Metrics(false)
	if len(ms) != 4 || ms[2].Name != "imap_command" || ms[2].Count != 0 {
		t.Errorf("metrics after a pre-login command = %+v", ms)
	}
	if g := s.Global(); g.NumCmds != 1 {
		t.Errorf("num_cmds = %d, want 1", g.NumCmds)
	}
}
