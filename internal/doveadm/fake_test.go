package doveadm

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
)

// fakeDirector answers director-admin lines from a script: reply(line) returns the reply
// lines (a list reply ends with ""); a nil result closes the connection.
type fakeDirector struct {
	mu    sync.Mutex
	seen  []string
	reply func(line string) []string
	greet string
}

func (d *fakeDirector) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	greet := d.greet
	if greet == "" {
		greet = "VERSION\tdirector-doveadm\t1\t0"
	}
	c.Write([]byte(greet + "\n"))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "VERSION\t") {
			continue
		}
		d.mu.Lock()
		d.seen = append(d.seen, line)
		d.mu.Unlock()
		out := d.reply(line)
		if out == nil {
			return
		}
		c.Write([]byte(strings.Join(out, "\n") + "\n"))
	}
}

func (d *fakeDirector) lines() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.seen...)
}

// goldenDirector answers like the recorded director: two backends, no users.
func goldenDirector(line string) []string {
	f := strings.Split(line, "\t")
	switch f[0] {
	case "HOST-LIST":
		return []string{"127.0.0.11\t100\t0\t\tU\t0", "127.0.0.12\t100\t0\t\tU\t0", ""}
	case "HOST-LIST-REMOVED", "USER-LIST":
		return []string{""}
	case "DIRECTOR-LIST":
		return []string{"127.0.0.10\t21090\tself\t0\tring synced\t0", ""}
	case "USER-LOOKUP":
		// the recorded ring: hash 123 and "true" land on different backends
		if f[1] == "true" {
			return []string{"\t0\t127.0.0.12\t127.0.0.12"}
		}
		return []string{"\t0\t127.0.0.11\t127.0.0.11"}
	case "HOST-UP", "HOST-DOWN", "HOST-REMOVE", "HOST-FLUSH", "HOST-RESET-USERS", "USER-MOVE", "HOST-UPDATE":
		for _, a := range f[1:] {
			if a == "10.9.9.9" || a == "10.255.255.1" {
				return []string{"NOTFOUND"}
			}
		}
		return []string{"OK"}
	case "DIRECTOR-REMOVE":
		if f[1] == "10.9.9.9" {
			return []string{"NOTFOUND"}
		}
		return []string{"OK"}
	case "HOST-SET", "DIRECTOR-ADD", "USER-KICK", "USER-KICK-ALT":
		return []string{"OK"}
	}
	return nil
}

type fakeServices struct {
	dir       *fakeDirector
	mu        sync.Mutex
	sessions  []Conn
	penalties []PenaltyRecord
	metrics   []Metric
	users     []string
	stopped   []string
	stops     int
	reloadErr error
	resets    int
}

func newFakeServices() *fakeServices {
	return &fakeServices{dir: &fakeDirector{reply: goldenDirector}}
}

func (f *fakeServices) DialAdmin(ctx context.Context, path string) (net.Conn, error) {
	if path != "" && path != "/run/usher/director-admin" {
		return nil, errors.New("no such socket")
	}
	a, b := net.Pipe()
	go f.dir.serve(b)
	return a, nil
}

func (f *fakeServices) UserHash(user string) (uint32, error) {
	sum := md5.Sum([]byte(strings.ToLower(user)))
	h := binary.BigEndian.Uint32(sum[:4])
	if h == 0 {
		h = 1
	}
	return h, nil
}

func (f *fakeServices) UserList(context.Context) ([]string, error) { return f.users, nil }

func (f *fakeServices) Sessions() []Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Conn(nil), f.sessions...)
}

func (f *fakeServices) KickSessions(match func(Conn) bool) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var users []string
	var keep []Conn
	for _, s := range f.sessions {
		if match(s) {
			users = append(users, s.User)
		} else {
			keep = append(keep, s)
		}
	}
	f.sessions = keep
	return users
}

func (f *fakeServices) Penalties() []PenaltyRecord  { return f.penalties }
func (f *fakeServices) Metrics(reset bool) []Metric { return f.metrics }
func (f *fakeServices) OldStatsDump(level, filter string) (OldStats, error) {
	if level != "global" {
		return OldStats{}, errors.New("Invalid level")
	}
	return OldStats{Keys: []string{"reset_timestamp", "last_update", "num_logins", "num_cmds",
		"num_connected_sessions", "auth_successes", "auth_failures"},
		Rows: [][]string{{"1", "0.000000", "0", "0", "0", "0", "0"}}}, nil
}
func (f *fakeServices) OldStatsReset()                { f.resets++ }
func (f *fakeServices) ProxySessions() []ProxySession { return nil }
func (f *fakeServices) ProxyKick(users []string, field, host string) int {
	return len(f.KickSessions(func(c Conn) bool {
		for _, u := range users {
			if u == c.User {
				return true
			}
		}
		return false
	}))
}
func (f *fakeServices) StopService(names []string) []string {
	var unknown []string
	for _, n := range names {
		if n != "pop3-login" && n != "imap-login" {
			unknown = append(unknown, n)
		}
	}
	f.stopped = append(f.stopped, names...)
	return unknown
}
func (f *fakeServices) Reload() error { return f.reloadErr }
func (f *fakeServices) Stop()         { f.mu.Lock(); f.stops++; f.mu.Unlock() }
