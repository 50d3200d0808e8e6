package doveadm

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/config"
)

func run(t *testing.T, s *Server, body string) string {
	t.Helper()
	status, out := s.Exec(t.Context(), []byte(body))
	if status != 200 {
		t.Fatalf("%s: status %d %s", body, status, out)
	}
	return string(out)
}

func TestCatalogueMatchesGolden(t *testing.T) {
	dir := casesDir(t)
	want, err := os.ReadFile(filepath.Join(dir, "api_v1_commands.body.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := NewServer(goldenConfig(), newFakeServices()).api
	if !bytes.Equal(got, want) {
		t.Fatalf("catalogue differs (%d vs %d bytes)", len(got), len(want))
	}
}

func TestCCDMatch(t *testing.T) {
	for _, c := range []struct {
		reg, given string
		ok         bool
	}{
		{"director status", "directorStatus", true},
		{"director status", "director-status", true},
		{"director status", "director status", true},
		{"director status", "DirectorStatus", false},
		{"director status", "directorstatus", false},
		{"director status", "directorSTATUS", false},
		{"socket-path", "socketPath", true},
		{"socket-path", "socket path", true},
		{"who", "who ", false},
	} {
		if ccdMatch(c.reg, c.given) != c.ok {
			t.Errorf("ccdMatch(%q,%q) != %v", c.reg, c.given, c.ok)
		}
	}
}

func TestDirectorLines(t *testing.T) {
	f := newFakeServices()
	s := NewServer(goldenConfig(), f)
	cases := []struct{ body, out, line string }{
		{`[["directorAdd",{"host":"127.0.0.13","vhostCount":"50","tag":"t1"},"x"]]`, `[["doveadmResponse",[],"x"]]`, "HOST-SET\t127.0.0.13@t1\t50"},
		{`[["directorAdd",{"host":"127.0.0.13@t2"},"x"]]`, `[["doveadmResponse",[],"x"]]`, "HOST-SET\t127.0.0.13@t2"},
		{`[["directorAdd",{"host":"12345"},"x"]]`, `[["error",{"type":"exitCode", "exitCode":64},"x"]]`, ""},
		{`[["directorAdd",{"host":"x.invalid"},"x"]]`, `[["error",{"type":"exitCode", "exitCode":75},"x"]]`, ""},
		{`[["directorUpdate",{"host":"127.0.0.13"},"x"]]`, `[["error",{"type":"exitCode", "exitCode":64},"x"]]`, ""},
		{`[["directorDown",{"host":"10.9.9.9"},"x"]]`, `[["error",{"type":"exitCode", "exitCode":68},"x"]]`, "HOST-DOWN\t10.9.9.9"},
		{`[["directorMove",{"user":"User001","host":"127.0.0.11"},"x"]]`, `[["doveadmResponse",[],"x"]]`, "USER-MOVE\t2549335831\t127.0.0.11"},
		{`[["directorKick",{"user":"a\tb"},"x"]]`, `[["doveadmResponse",[],"x"]]`, "USER-KICK\ta\x01tb"},
		{`[["directorKick",{"user":"u","passdbField":"f"},"x"]]`, `[["doveadmResponse",[],"x"]]`, "USER-KICK-ALT\tf\tu"},
		{`[["directorFlush",{"host":"all","maxParallel":3},"x"]]`, `[["doveadmResponse",[],"x"]]`, "HOST-RESET-USERS\t\t3"},
		{`[["directorFlush",{"host":"all","forceFlush":true},"x"]]`, `[["doveadmResponse",[],"x"]]`, "HOST-FLUSH"},
		{`[["directorFlush",{"host":"127.0.0.12"},"x"]]`, `[["doveadmResponse",[],"x"]]`, "HOST-RESET-USERS\t127.0.0.12"},
		{`[["directorRingAdd",{"ip":"127.0.0.14","port":21090},"x"]]`, `[["doveadmResponse",[],"x"]]`, "DIRECTOR-ADD\t127.0.0.14\t21090"},
		{`[["directorRingAdd",{"ip":"bogus"},"x"]]`, `[["error",{"type":"exitCode", "exitCode":64},"x"]]`, ""},
		{`[["directorRingRemove",{"ip":"10.9.9.9"},"x"]]`, `[["error",{"type":"exitCode", "exitCode":68},"x"]]`, "DIRECTOR-REMOVE\t10.9.9.9"},
		{`[["directorMap",{"userMap":true,"host":"User@Example.com"},"x"]]`, `[["doveadmResponse",[{"hash":"3045693125"}],"x"]]`, ""},
		{`[["directorMap",{"hashMap":true},"x"]]`, `[["error",{"type":"exitCode", "exitCode":64},"x"]]`, ""},
		{`[["directorStatus",{"socketPath":"/elsewhere"},"x"]]`, `[["error",{"type":"exitCode", "exitCode":75},"x"]]`, ""},
	}
	for _, c := range cases {
		before := len(f.dir.lines())
		if got := run(t, s, c.body); got != c.out {
			t.Errorf("%s:\n got %s\nwant %s", c.body, got, c.out)
		}
		seen := f.dir.lines()[before:]
		if c.line != "" && (len(seen) == 0 || seen[len(seen)-1] != c.line) {
			t.Errorf("%s: sent %q, want last %q", c.body, seen, c.line)
		}
	}
}

func TestDirectorReplies(t *testing.T) {
	f := newFakeServices()
	f.users = []string{"user001", "user002"}
	f.dir.reply = func(line string) []string {
		switch {
		case line == "HOST-LIST":
			return []string{"127.0.0.11\t100\t3\tmy\x01ttag\tD\t1700000000", "short\tline", ""}
		case line == "HOST-LIST-REMOVED":
			return []string{"127.0.0.9", ""}
		case line == "DIRECTOR-LIST":
			return []string{"127.0.0.14\t9090\t\t0\t", ""}
		case strings.HasPrefix(line, "USER-LIST"):
			return []string{"2549335831\t1700000000\t127.0.0.12", "garbage", "1\t1700000000\t127.0.0.11", ""}
		case strings.HasPrefix(line, "USER-LOOKUP"):
			return []string{"127.0.0.12\t1700000000\t127.0.0.12\t127.0.0.11"}
		}
		return nil
	}
	s := NewServer(goldenConfig(), f)
	ts := unixdate2str(1700000000)
	for _, c := range []struct{ body, out string }{
		{`[["directorStatus",{},"x"]]`, `[["doveadmResponse",[{"mail server ip":"127.0.0.11","tag":"my\ttag","vhosts":"100","state":"down","state-changed":"` + ts + `","users":"3"}],"x"]]`},
		{`[["directorStatus",{"user":"u"},"x"]]`, `[["doveadmResponse",[{"status":"127.0.0.12","expires":"` + ts + `","hashed":"127.0.0.12","initial-config":"127.0.0.11"}],"x"]]`},
		{`[["directorDump",{},"x"]]`, `[["doveadmResponse",[{"command":"add","socket-path":"/run/usher/director-admin","host":"127.0.0.11@my\ttag","vhost_count":"100"},{"command":"remove","socket-path":"/run/usher/director-admin","host":"127.0.0.9","vhost_count":""}],"x"]]`},
		{`[["directorRingStatus",{},"x"]]`, `[["doveadmResponse",[{"director ip":"127.0.0.14","port":"9090","type":"","last failed":"never","status":"","ping ms":"-","input":"-","output":"-","buffered":"-","buffered peak":"-","last read":"-","last write":"-"}],"x"]]`},
		{`[["directorMap",{"host":"127.0.0.12"},"x"]]`, `[["error",{"type":"exitCode", "exitCode":76},"x"]]`},
		{`[["directorMap",{"hashMap":true,"host":"2549335831"},"x"]]`, `[["doveadmResponse",[{"user":"user001"}],"x"]]`},
	} {
		if got := run(t, s, c.body); got != c.out {
			t.Errorf("%s:\n got %s\nwant %s", c.body, got, c.out)
		}
	}
	// a director that is not one: 76; one that hangs up: 75
	f.dir.greet = "VERSION\tanvil\t1\t0"
	if got := run(t, s, `[["directorStatus",{},"x"]]`); got != `[["error",{"type":"exitCode", "exitCode":76},"x"]]` {
		t.Error(got)
	}
	f.dir.greet = ""
	f.dir.reply = func(string) []string { return nil }
	if got := run(t, s, `[["directorStatus",{},"x"]]`); got != `[["error",{"type":"exitCode", "exitCode":75},"x"]]` {
		t.Error(got)
	}
}

func TestWhoKickPenalty(t *testing.T) {
	f := newFakeServices()
	f.sessions = []Conn{
		{User: "user001", Service: "imap", IP: "127.0.0.1", Pid: 10},
		{User: "user001", Service: "imap", IP: "127.0.0.1", Pid: 11},
		{User: "bob", Service: "pop3", IP: "10.0.0.5", Pid: 12},
	}
	now := time.Unix(1700000000, 0)
	f.penalties = []PenaltyRecord{{IP: "127.0.0.53", Penalty: 2, LastPenalty: now, LastUpdate: now},
		{IP: "10.1.1.1", Penalty: 3, LastPenalty: now, LastUpdate: now}}
	s := NewServer(goldenConfig(), f)
	for _, c := range []struct{ body, out string }{
		{`[["who",{},"t"]]`, `[["doveadmResponse",[{"username":"user001","connections":"2","service":"imap","pids":"(10 11)","ips":"(127.0.0.1)"},{"username":"bob","connections":"1","service":"pop3","pids":"(12)","ips":"(10.0.0.5)"}],"t"]]`},
		{`[["who",{"mask":["USER*","127.0.0.0/8"]},"t"]]`, `[["doveadmResponse",[{"username":"user001","connections":"2","service":"imap","pids":"(10 11)","ips":"(127.0.0.1)"}],"t"]]`},
		{`[["who",{"separateConnections":"true","mask":"b?b"},"t"]]`, `[["doveadmResponse",[{"username":"bob","service":"pop3","pid":"12","ip":"10.0.0.5"}],"t"]]`},
		{`[["who",{"mask":["a","b"]},"t"]]`, `[["error",{"type":"exitCode", "exitCode":64},"t"]]`},
		{`[["who",{"mask":["1.0.0.0/8","2.0.0.0/8"]},"t"]]`, `[["error",{"type":"exitCode", "exitCode":64},"t"]]`},
		{`[["penalty",{},"t"]]`, `[["doveadmResponse",[{"IP":"127.0.0.53","penalty":"2","last_penalty":"` + unixdate2str(now.Unix()) + `","last_update":"` + now.Format("15:04:05") + `"},{"IP":"10.1.1.1","penalty":"3","last_penalty":"` + unixdate2str(now.Unix()) + `","last_update":"` + now.Format("15:04:05") + `"}],"t"]]`},
		{`[["penalty",{"netmask":"10.0.0.0/8"},"t"]]`, `[["doveadmResponse",[{"IP":"10.1.1.1","penalty":"3","last_penalty":"` + unixdate2str(now.Unix()) + `","last_update":"` + now.Format("15:04:05") + `"}],"t"]]`},
		{`[["penalty",{"netmask":"bogus"},"t"]]`, `[["error",{"type":"exitCode", "exitCode":64},"t"]]`},
		{`[["kick",{},"t"]]`, `[["error",{"type":"exitCode", "exitCode":64},"t"]]`},
		{`[["kick",{"mask":"nobody"},"t"]]`, `[["error",{"type":"exitCode", "exitCode":68},"t"]]`},
		{`[["kick",{"mask":["user001"]},"t"]]`, `[["doveadmResponse",[{"result":"user001"}],"t"]]`},
		{`[["kick",{"mask":[]},"t"]]`, `[["doveadmResponse",[{"result":"bob"}],"t"]]`},
		{`[["who",{"socketPath":"/run/usher/anvil"},"t"]]`, `[["doveadmResponse",[],"t"]]`},
	} {
		if got := run(t, s, c.body); got != c.out {
			t.Errorf("%s:\n got %s\nwant %s", c.body, got, c.out)
		}
	}
}

func TestStatsAndMaster(t *testing.T) {
	f := newFakeServices()
	f.metrics = []Metric{{Name: "auth_success", Field: "duration", Count: 3, Sum: 300, Min: 50, Max: 150,
		Avg: 100, Variance: 2500, Quantile: func(q float64) uint64 {
			if q >= 0.95 {
				return 150
			}
			return 100
		}}}
	s := NewServer(goldenConfig(), f)
	for _, c := range []struct{ body, out string }{
		{`[["statsDump",{},"t"]]`, `[["doveadmResponse",[{"metric_name":"auth_success","field":"duration","count":3,"sum":300,"min":50,"max":150,"avg":100.00,"median":100,"stddev":50.00,"%95":150}],"t"]]`},
		{`[["statsDump",{"fields":"count,sum"},"t"]]`, `[["doveadmResponse",[{"metric_name":"auth_success","field":"duration","count":3,"sum":300}],"t"]]`},
		{`[["statsDump",{"type":"global"},"t"]]`, `[["doveadmResponse",[{"reset_timestamp":"1","last_update":"0.000000","num_logins":"0","num_cmds":"0","num_connected_sessions":"0","auth_successes":"0","auth_failures":"0"}],"t"]]`},
		{`[["oldstatsDump",{},"t"]]`, `[["error",{"type":"exitCode", "exitCode":64},"t"]]`},
		{`[["oldstatsDump",{"type":"bogus"},"t"]]`, `[["error",{"type":"exitCode", "exitCode":64},"t"]]`},
		{`[["statsReset",{},"t"]]`, `[["doveadmResponse",[],"t"]]`},
		{`[["serviceStop",{"service":"pop3-login"},"t"]]`, `[["doveadmResponse",[],"t"]]`},
		{`[["serviceStop",{"service":["nosuch"]},"t"]]`, `[["error",{"type":"exitCode", "exitCode":68},"t"]]`},
		{`[["serviceStop",{},"t"]]`, `[["error",{"type":"exitCode", "exitCode":64},"t"]]`},
		{`[["reload",{},"t"]]`, `[["doveadmResponse",[],"t"]]`},
		{`[["fsGet",{},"t"]]`, `[["error",{"type":"exitCode", "exitCode":75},"t"]]`},
		{`[["stop",{},"t"]]`, `[["doveadmResponse",[],"t"]]`},
	} {
		if got := run(t, s, c.body); got != c.out {
			t.Errorf("%s:\n got %s\nwant %s", c.body, got, c.out)
		}
	}
	if f.stops != 1 {
		t.Errorf("stop ran %d times", f.stops)
	}
}

func TestGrammar(t *testing.T) {
	s := NewServer(goldenConfig(), newFakeServices())
	for _, c := range []struct {
		body   string
		status int
		out    string
	}{
		{``, 400, "JSON parse error: Missing '}'"},
		{`[["who",{"mask":"a","mask":"b"},"t"]]`, 400, "Parameter `mask' is duplicated"},
		{`[["who",{"socket-path":"a","socketPath":"b"},"t"]]`, 400, "Parameter `socket-path' is duplicated"},
		{`[["nosuch",[1,{"a":[]}],"t"]]`, 200, `[["error",{"type":"unknownMethod", "exitCode":0},"t"]]`},
		{`[["who",{"bogus":{"x":[1]},"mask":5},"t"]]`, 200, `[["error",{"type":"invalidRequest", "exitCode":0},"t"]]`},
		{`[["who",{},"\u00e9\"\n"]]`, 200, "[[\"doveadmResponse\",[],\"é\\\"\\n\"]]"},
		{`[["who",{}, "a"], ["who"`, 400, "JSON parse error: Missing '}'"},
		{`[["who",{},"a"],]`, 400, "JSON parse error: Invalid data as value"},
		{`[["who",{"x" 1},"a"]]`, 400, "JSON parse error: Expected ':' after object key"},
		{`[["who",{"mask":"a" "b"},"a"]]`, 400, "JSON parse error: Expected ',' or '}' after object value"},
	} {
		status, out := s.Exec(t.Context(), []byte(c.body))
		if status != c.status || string(out) != c.out {
			t.Errorf("%q: got %d %s, want %d %s", c.body, status, out, c.status, c.out)
		}
	}
}

// Earlier commands keep their effects when a later element is malformed.
func TestCommandsRunAsParsed(t *testing.T) {
	f := newFakeServices()
	s := NewServer(goldenConfig(), f)
	status, _ := s.Exec(t.Context(), []byte(`[["serviceStop",{"service":"imap-login"},"a"],["who",{} "b"]]`))
	if status != 400 || len(f.stopped) != 1 {
		t.Fatalf("status %d, stopped %v", status, f.stopped)
	}
}

func TestAllowedCommands(t *testing.T) {
	cfg := goldenConfig()
	cfg.AllowedCommands = []string{"who"}
	s := NewServer(cfg, newFakeServices())
	got := run(t, s, `[["penalty",{},"a"],["who",{},"b"]]`)
	if got != `[["error",{"type":"unAuthorized", "exitCode":0},"a"],["doveadmResponse",[],"b"]]` {
		t.Error(got)
	}
	s.SetConfig(goldenConfig())
	if got := run(t, s, `[["penalty",{},"a"]]`); got != `[["doveadmResponse",[],"a"]]` {
		t.Error(got)
	}
}

// TestAllowedCommandsFromConfig: "director status, who" as written in a
// config file allows exactly those two commands (the list was once split on
// spaces too, which allowed "stop" and refused both).
func TestAllowedCommandsFromConfig(t *testing.T) {
	set, _, err := config.Parse("t.conf", []byte("doveadm_allowed_commands = director status, who\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := goldenConfig()
	cfg.AllowedCommands = set.DoveadmAllowedCommands
	f := newFakeServices()
	s := NewServer(cfg, f)
	for cmd, allowed := range map[string]bool{"directorStatus": true, "who": true, "stop": false, "directorMap": false, "directorKick": false, "serviceStop": false} {
		got := run(t, s, `[["`+cmd+`",{},"t"]]`)
		if refused := strings.Contains(got, `"unAuthorized"`); refused == allowed {
			t.Errorf("%s: %s", cmd, got)
		}
	}
	if f.stops != 0 || len(f.stopped) != 0 {
		t.Error("a refused command ran")
	}
}

// TestDirectorStatusInjection: a user name carrying a line break and a
// second command is refused with exit 64 and no command but the handshake
// reaches the director.
func TestDirectorStatusInjection(t *testing.T) {
	f := newFakeServices()
	s := NewServer(goldenConfig(), f)
	for _, user := range []string{"user01\nHOST-SET\t10.77.77.77\t3", "user01\tx", "user01\r", "a\x01n"} {
		body, _ := json.Marshal([]any{[]any{"directorStatus", map[string]string{"user": user}, "t"}})
		got := run(t, s, string(body))
		if got != `[["error",{"type":"exitCode", "exitCode":64},"t"]]` {
			t.Errorf("%q: %s", user, got)
		}
	}
	if seen := f.dir.lines(); len(seen) != 0 {
		t.Errorf("lines sent to the director: %q", seen)
	}
}
