package status

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestEventsBoundedNewestFirst(t *testing.T) {
	var e Events
	t0 := time.Unix(1_800_000_000, 0)
	for i := range maxEvents + 7 {
		e.Command(t0.Add(time.Duration(i)*time.Second), []string{"HOST-UP", "10.0.0.1"}, "OK")
	}
	e.Command(t0, []string{"HOST-LIST"}, "") // a read is no event
	got := e.Recent()
	if len(got) != maxEvents || !got[0].Time.Equal(t0.Add((maxEvents+6)*time.Second)) || got[0].What != "HOST-UP 10.0.0.1" {
		t.Fatalf("%d events, newest %+v", len(got), got[0])
	}
	// The USHER-USER-IMPORTs of one import are one event.
	for _, r := range []string{"OK", "OK", "UNCHANGED"} {
		e.Command(t0.Add(time.Hour), []string{"USHER-USER-IMPORT", "1", "2", "10.0.0.1"}, r)
	}
	if ev := e.Recent()[0]; ev.Kind != "import" || ev.What != "USHER-USER-IMPORT of 3 mappings" || ev.Result != "OK 2 UNCHANGED 1" {
		t.Fatalf("import event %+v", ev)
	}
	e.Command(t0, []string{"USER-KICK-ALT", "x", strings.Repeat("y", 1000)}, "OK")
	if w := e.Recent()[0].What; len(w) > maxWhat+3 {
		t.Fatalf("event text not bounded: %d bytes", len(w))
	}
}

func TestRenderPicksTheFormat(t *testing.T) {
	snap := &Snapshot{Time: time.Unix(1_800_000_000, 0), Leader: "10.0.0.9:9090",
		Backends: []Backend{{IP: "10.0.0.1", Vhosts: 100, Users: 3, State: "Down"}},
		Events:   []Event{{Kind: "host", What: "HOST-DOWN <script>", Result: "OK"}}}
	for accept, want := range map[string]string{
		"*/*": "text/plain", "": "text/plain", "application/json": "text/plain",
		"text/html,application/xhtml+xml;q=0.9": "text/html", "TEXT/HTML": "text/html",
	} {
		ct, body := Render(snap, accept)
		if !strings.HasPrefix(ct, want) {
			t.Errorf("Accept %q: %s", accept, ct)
		}
		if strings.Contains(string(body), "<script>") && want == "text/html" {
			t.Errorf("Accept %q: event text not escaped", accept)
		}
	}
}

func TestReadCountsSessionsAndReportsErrors(t *testing.T) {
	src := &Source{
		Admin:    func(context.Context) (net.Conn, error) { return nil, net.ErrClosed },
		Sessions: func() []Session { return []Session{{"a", "imap", "1"}, {"a", "pop3", "1"}, {"b", "imap", "2"}} },
		Now:      time.Now,
	}
	snap := src.Read(context.Background())
	if snap.Sessions != 3 || snap.SessionUsers != 2 || len(snap.PerProtocol) != 2 || snap.PerProtocol[0] != (Count{"imap", 2}) {
		t.Fatalf("%+v", snap)
	}
	if len(snap.Errors) != 1 || !strings.Contains(string(Text(snap)), "error: director-admin") {
		t.Fatalf("errors %v", snap.Errors)
	}
}
