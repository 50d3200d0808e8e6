package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/usher-mail/usher/internal/stats"
)

type fakeSource struct {
	sessions map[[2]string]int
	backends []BackendState
	mappings int
	raft     map[string]string
}

func (f *fakeSource) Sessions() map[[2]string]int   { return f.sessions }
func (f *fakeSource) BackendStates() []BackendState { return f.backends }
func (f *fakeSource) Mappings() int                 { return f.mappings }
func (f *fakeSource) Raft() map[string]string       { return f.raft }

func leaderSource() *fakeSource {
	return &fakeSource{
		sessions: map[[2]string]int{{"imap", "127.0.0.11"}: 3, {"imap", "127.0.0.12"}: 1},
		backends: []BackendState{
			{IP: "127.0.0.11", Up: true, Vhosts: 100, Users: 2},
			{IP: "127.0.0.12", Tag: "eu", Up: false, Vhosts: 0, Users: 1},
			{IP: "127.0.0.12", Tag: "dup", Up: true, Vhosts: 5}, // ignored
		},
		mappings: 3,
		raft: map[string]string{
			"state": "Leader", "term": "4", "last_log_index": "42", "commit_index": "41",
			"applied_index": "40", "last_snapshot_index": "0", "fsm_pending": "0",
			"num_peers": "2", "last_contact": "0", "latest_configuration": "[{Suffrage:Voter ...}]",
		},
	}
}

func TestCollector(t *testing.T) {
	c := NewCollector(leaderSource())
	want := `
# HELP usher_backend_sessions Proxied sessions now connected, per service and backend.
# TYPE usher_backend_sessions gauge
usher_backend_sessions{backend="127.0.0.11",service="imap"} 3
usher_backend_sessions{backend="127.0.0.12",service="imap"} 1
# HELP usher_backend_up 1 if the director routes new users to the backend, 0 if it is marked down.
# TYPE usher_backend_up gauge
usher_backend_up{backend="127.0.0.11",tag=""} 1
usher_backend_up{backend="127.0.0.12",tag="eu"} 0
# HELP usher_backend_users Live user mappings pointing at the backend.
# TYPE usher_backend_users gauge
usher_backend_users{backend="127.0.0.11",tag=""} 2
usher_backend_users{backend="127.0.0.12",tag="eu"} 1
# HELP usher_backend_vhosts Vhost count (ring weight) of the backend; 0 means flushed out of the ring.
# TYPE usher_backend_vhosts gauge
usher_backend_vhosts{backend="127.0.0.11",tag=""} 100
usher_backend_vhosts{backend="127.0.0.12",tag="eu"} 0
# HELP usher_user_mappings Live user -> backend mappings.
# TYPE usher_user_mappings gauge
usher_user_mappings 3
# HELP usher_raft_state 1 for the raft state this node is in, 0 for the others.
# TYPE usher_raft_state gauge
usher_raft_state{state="Candidate"} 0
usher_raft_state{state="Follower"} 0
usher_raft_state{state="Leader"} 1
usher_raft_state{state="Shutdown"} 0
# HELP usher_raft_last_index Index of the last raft log entry.
# TYPE usher_raft_last_index gauge
usher_raft_last_index 42
# HELP usher_raft_applied_index Index of the last raft log entry applied to the state.
# TYPE usher_raft_applied_index gauge
usher_raft_applied_index 40
# HELP usher_raft_peers Other voting members of the ring.
# TYPE usher_raft_peers gauge
usher_raft_peers 2
# HELP usher_raft_last_contact_seconds Time since a follower last heard from the leader; 0 on the leader.
# TYPE usher_raft_last_contact_seconds gauge
usher_raft_last_contact_seconds 0
`
	names := []string{"usher_backend_sessions", "usher_backend_up", "usher_backend_users",
		"usher_backend_vhosts", "usher_user_mappings", "usher_raft_state", "usher_raft_last_index",
		"usher_raft_applied_index", "usher_raft_peers", "usher_raft_last_contact_seconds"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP usher_raft_term Current raft term.
# TYPE usher_raft_term gauge
usher_raft_term 4
`), "usher_raft_term"); err != nil {
		t.Error(err)
	}
}

func TestCollectorFollowerAndUnknowns(t *testing.T) {
	src := &fakeSource{raft: map[string]string{
		"state": "Follower", "term": "not-a-number", "last_contact": "1.5s",
	}}
	c := NewCollector(src)
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP usher_raft_last_contact_seconds Time since a follower last heard from the leader; 0 on the leader.
# TYPE usher_raft_last_contact_seconds gauge
usher_raft_last_contact_seconds 1.5
`), "usher_raft_last_contact_seconds", "usher_raft_term"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP usher_raft_state 1 for the raft state this node is in, 0 for the others.
# TYPE usher_raft_state gauge
usher_raft_state{state="Candidate"} 0
usher_raft_state{state="Follower"} 1
usher_raft_state{state="Leader"} 0
usher_raft_state{state="Shutdown"} 0
`), "usher_raft_state"); err != nil {
		t.Error(err)
	}

	// A state hashicorp/raft might add later still shows up as current.
	src.raft = map[string]string{"state": "Learner", "last_contact": "never"}
	if n := testutil.CollectAndCount(c, "usher_raft_state"); n != 5 {
		t.Errorf("usher_raft_state series = %d, want 5", n)
	}
	if n := testutil.CollectAndCount(c, "usher_raft_last_contact_seconds"); n != 0 {
		t.Errorf("last_contact never: %d series, want 0", n)
	}

	// No raft node at all: no raft series, the rest still there.
	src.raft = nil
	if n := testutil.CollectAndCount(c, "usher_raft_state"); n != 0 {
		t.Errorf("nil raft: %d state series", n)
	}
	if n := testutil.CollectAndCount(c, "usher_user_mappings"); n != 1 {
		t.Errorf("nil raft: %d usher_user_mappings series, want 1", n)
	}
}

// TestLint runs promlint over every exported metric family.
func TestLint(t *testing.T) {
	probs, err := testutil.CollectAndLint(NewCollector(leaderSource()))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestRegistersNextToStats guards against a name clash with internal/stats:
// both collectors go into the one registry usher serves.
func TestRegistersNextToStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := stats.New(time.Now)
	st.Register(reg)
	if err := reg.Register(NewCollector(leaderSource())); err != nil {
		t.Fatalf("register next to stats: %v", err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
}

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(leaderSource()))
	var readyErr error = errors.New("raft has no leader")
	h := NewHandler(reg, func() error { return readyErr })

	if code, body := get(t, h, "GET", "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, h, "GET", "/readyz"); code != 503 || !strings.Contains(body, "raft has no leader") {
		t.Errorf("/readyz not ready = %d %q", code, body)
	}
	readyErr = nil
	if code, body := get(t, h, "GET", "/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz ready = %d %q", code, body)
	}
	if code, _ := get(t, h, "HEAD", "/readyz"); code != 200 {
		t.Errorf("HEAD /readyz = %d", code)
	}
	if code, _ := get(t, h, "POST", "/healthz"); code != 405 {
		t.Errorf("POST /healthz = %d, want 405", code)
	}
	code, body := get(t, h, "GET", "/metrics")
	if code != 200 || !strings.Contains(body, "usher_user_mappings 3\n") ||
		!strings.Contains(body, `usher_raft_state{state="Leader"} 1`) {
		t.Errorf("/metrics = %d:\n%s", code, body)
	}
	for _, p := range []string{"/", "/doveadm/v1", "/metricsx", "/healthz/x"} {
		if code, _ := get(t, h, "GET", p); code != 404 {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
}

func TestHandlerNilReady(t *testing.T) {
	h := NewHandler(prometheus.NewRegistry(), nil)
	if code, _ := get(t, h, "GET", "/readyz"); code != 200 {
		t.Errorf("/readyz with nil ready = %d", code)
	}
}

type jobSource struct {
	*fakeSource
	jobs []JobState
}

func (j jobSource) Jobs() []JobState { return j.jobs }

// TestCollectorCausesAndJobs: why a backend is down, the checks' verdict,
// an admin's hold, and drain progress.
func TestCollectorCausesAndJobs(t *testing.T) {
	src := jobSource{fakeSource: &fakeSource{backends: []BackendState{
		{IP: "127.0.0.11", Up: true, Cause: "admin", HealthDown: true, HoldUp: true},
		{IP: "127.0.0.12", Cause: "health", HealthDown: true},
		{IP: "127.0.0.13", Cause: "admin"},
	}}, jobs: []JobState{{Kind: "drain", Backend: "127.0.0.13", Running: true, UsersLeft: 7, InFlight: 3, Moved: 5, Total: 12}}}
	want := `
# HELP usher_backend_down 1 if the backend is down for this cause (admin: HOST-DOWN/directorDown, health: usher's health checks).
# TYPE usher_backend_down gauge
usher_backend_down{backend="127.0.0.11",cause="admin",tag=""} 0
usher_backend_down{backend="127.0.0.11",cause="health",tag=""} 0
usher_backend_down{backend="127.0.0.12",cause="admin",tag=""} 0
usher_backend_down{backend="127.0.0.12",cause="health",tag=""} 1
usher_backend_down{backend="127.0.0.13",cause="admin",tag=""} 1
usher_backend_down{backend="127.0.0.13",cause="health",tag=""} 0
# HELP usher_backend_admin_hold 1 if an admin put the backend up while its checks failed; the checks leave it up until they pass and fail anew.
# TYPE usher_backend_admin_hold gauge
usher_backend_admin_hold{backend="127.0.0.11",tag=""} 1
usher_backend_admin_hold{backend="127.0.0.12",tag=""} 0
usher_backend_admin_hold{backend="127.0.0.13",tag=""} 0
# HELP usher_move_job_users_left Users still mapped to the backend being drained or evacuated.
# TYPE usher_move_job_users_left gauge
usher_move_job_users_left{backend="127.0.0.13",job="drain"} 7
# HELP usher_move_job_in_flight User moves of the job between their kick and the end of the kick delay.
# TYPE usher_move_job_in_flight gauge
usher_move_job_in_flight{backend="127.0.0.13",job="drain"} 3
`
	if err := testutil.CollectAndCompare(NewCollector(src), strings.NewReader(want),
		"usher_backend_down", "usher_backend_admin_hold", "usher_move_job_users_left", "usher_move_job_in_flight"); err != nil {
		t.Error(err)
	}
}
