package status

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Event is one admin change the status page lists: a host added, changed,
// marked up or down or removed, a user moved or kicked, mappings flushed or
// imported, a director added or removed.
type Event struct {
	Time   time.Time
	Kind   string // host, user, ring, import
	What   string // the command and its arguments, e.g. "HOST-DOWN 10.0.0.1"
	Result string // the reply: OK, NOTFOUND, ...

	imports map[string]int // an import event: replies counted
}

// maxEvents bounds the ring: the page shows what happened lately, the log
// keeps the rest.
const maxEvents = 50

// Events is a bounded ring of the latest events, safe for concurrent use.
type Events struct {
	mu   sync.Mutex
	buf  [maxEvents]Event
	next int // where the next event goes
	n    int
}

// Add records an event, dropping the oldest when the ring is full.
func (e *Events) Add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.push(ev)
}

func (e *Events) push(ev Event) {
	e.buf[e.next] = ev
	e.next = (e.next + 1) % maxEvents
	e.n = min(e.n+1, maxEvents)
}

// Recent returns the events newest first.
func (e *Events) Recent() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Event, 0, e.n)
	for i := 1; i <= e.n; i++ {
		out = append(out, e.buf[(e.next-i+maxEvents)%maxEvents])
	}
	return out
}

// eventKinds are the director-admin commands that change something, with
// the kind the page files them under; reads (HOST-LIST, USER-LOOKUP...) are
// not events.
var eventKinds = map[string]string{
	"HOST-SET": "host", "HOST-UPDATE": "host", "HOST-UP": "host", "HOST-DOWN": "host",
	"HOST-REMOVE": "host", "HOST-FLUSH": "host", "HOST-RESET-USERS": "host",
	"USER-MOVE": "user", "USER-KICK": "user", "USER-KICK-ALT": "user",
	"DIRECTOR-ADD": "ring", "DIRECTOR-REMOVE": "ring",
	"USHER-HOST-DRAIN": "user", "USHER-REBALANCE": "user",
}

// maxWhat bounds an event's text (a kick-alt value can be long).
const maxWhat = 200

// importWindow joins the USHER-USER-IMPORT commands of one `usher import` run
// into one event.
const importWindow = time.Minute

// Command records a director-admin command if it is a change. The
// USHER-USER-IMPORTs of an import become one event that counts them.
func (e *Events) Command(now time.Time, fields []string, reply string) {
	if len(fields) == 0 {
		return
	}
	if fields[0] == "USHER-USER-IMPORT" {
		e.countImport(now, reply)
		return
	}
	kind, ok := eventKinds[fields[0]]
	if !ok {
		return
	}
	what := ""
	for i, f := range fields {
		if i > 0 {
			what += " "
		}
		what += f
	}
	if len(what) > maxWhat {
		what = what[:maxWhat] + "..."
	}
	e.Add(Event{Time: now, Kind: kind, What: what, Result: reply})
}

func (e *Events) countImport(now time.Time, reply string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n > 0 {
		last := &e.buf[(e.next-1+maxEvents)%maxEvents]
		if last.Kind == "import" && now.Sub(last.Time) < importWindow {
			last.Time = now
			last.count(reply)
			return
		}
	}
	ev := Event{Time: now, Kind: "import", imports: map[string]int{}}
	ev.count(reply)
	e.push(ev)
}

// count adds one USHER-USER-IMPORT reply to an import event's text.
func (ev *Event) count(reply string) {
	ev.imports[reply]++
	n := 0
	for _, c := range ev.imports {
		n += c
	}
	ev.What = fmt.Sprintf("USHER-USER-IMPORT of %d mappings", n)
	ev.Result = ""
	for _, r := range []string{"OK", "UNCHANGED", "NEWER", "NOTFOUND"} {
		if c := ev.imports[r]; c > 0 {
			ev.Result += fmt.Sprintf("%s %d ", r, c)
		}
	}
	ev.Result = strings.TrimSpace(ev.Result)
}
