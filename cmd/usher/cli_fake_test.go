package main

import (
	"bufio"
	"context"
	"errors"
	"hash/crc32"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/doveadm"
)

// fakeDirector answers the director-admin protocol like a director with two backends, one
// tagged backend, three user mappings and a ring of two.
func fakeDirector(c net.Conn) {
	defer c.Close()
	c.Write([]byte("VERSION\tdirector-doveadm\t1\t0\n"))
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		var out []string
		switch f[0] {
		case "VERSION":
			continue
		case "HOST-LIST":
			out = []string{"127.0.0.11\t100\t2\t\tU\t0", "127.0.0.12\t100\t1\t\tD\t1795717625",
				"127.0.0.13\t50\t0\tssd\tU\t0", ""}
		case "HOST-LIST-REMOVED":
			out = []string{"127.0.0.14", ""}
		case "USER-LIST":
			out = []string{"2549335831\t1795718525\t127.0.0.12", "2338566802\t1795718525\t127.0.0.11",
				"12345\t1795718525\t127.0.0.11", ""}
		case "USER-LOOKUP":
			if f[1] == "user001" {
				out = []string{"127.0.0.12\t1795717625\t127.0.0.12\t127.0.0.11"}
			} else {
				out = []string{"\t0\t127.0.0.11\t127.0.0.11"}
			}
		case "DIRECTOR-LIST":
			out = []string{"127.0.0.10\t9090\tself\t0\tring synced\t3",
				"127.0.0.20\t9090\tright\t0\tsynced\t1\t2048\t4096\t0\t512\t1795717625\t1795717626", ""}
		case "USHER-HOST-HEALTH":
			out = []string{"127.0.0.11\tup\t\tpassing\t0\t2\t0", "127.0.0.12\tdown\thealth\tfailing\t0\t1\t1795717625",
				"127.0.0.13\tup\tadmin\tfailing\t1\t0\t1795717626", ""}
		case "USHER-HOST-DRAIN":
			out = []string{"drain\t" + f[1] + "\trunning\t2\t1\t2\t2\t0\t0\t2\t100\t"}
			if f[1] == "10.9.9.9" {
				out = []string{"NOTFOUND"}
			}
		case "USHER-REBALANCE":
			out = []string{"rebalance\t\trunning\t0\t0\t5\t5\t0\t0\t9\t" + f[len(f)-1] + "\t"}
		case "USHER-JOBS":
			out = []string{"drain\t127.0.0.11\tdone\t0\t0\t0\t2\t2\t0\t2\t100\t",
				"rebalance\t\tdone\t0\t0\t0\t5\t9\t0\t9\t5\t", ""}
		case "HOST-UP", "HOST-DOWN", "HOST-REMOVE", "HOST-FLUSH", "HOST-RESET-USERS", "USER-MOVE", "HOST-UPDATE", "DIRECTOR-REMOVE":
			out = []string{"OK"}
			for _, a := range f[1:] {
				if a == "10.9.9.9" {
					out = []string{"NOTFOUND"}
				}
			}
		default:
			out = []string{"OK"}
		}
		c.Write([]byte(strings.Join(out, "\n") + "\n"))
	}
}

type fakeServices struct {
	mu       sync.Mutex
	sessions []doveadm.Conn
}

func newFakeServices() *fakeServices {
	return &fakeServices{sessions: []doveadm.Conn{
		{User: "user001", Service: "imap", IP: "127.0.0.1", Pid: 101},
		{User: "user001", Service: "imap", IP: "127.0.0.2", Pid: 102},
		{User: "user002", Service: "pop3", IP: "127.0.0.1", Pid: 103},
		{User: "bjørn", Service: "imap", IP: "::1", Pid: 104},
	}}
}

func (f *fakeServices) DialAdmin(_ context.Context, path string) (net.Conn, error) {
	if path != "" && path != "/run/usher/director-admin" {
		return nil, errors.New("no such socket")
	}
	a, b := net.Pipe()
	go fakeDirector(b)
	return a, nil
}

func (f *fakeServices) UserHash(user string) (uint32, error) {
	return crc32.ChecksumIEEE([]byte(user)), nil
}

func (f *fakeServices) UserList(context.Context) ([]string, error) {
	return []string{"user001", "user002"}, nil
}

func (f *fakeServices) Sessions() []doveadm.Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]doveadm.Conn(nil), f.sessions...)
}

func (f *fakeServices) KickSessions(match func(doveadm.Conn) bool) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var users []string
	var keep []doveadm.Conn
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

func (f *fakeServices) Penalties() []doveadm.PenaltyRecord {
	t := time.Unix(1795717625, 0)
	return []doveadm.PenaltyRecord{{IP: "127.0.0.51", Penalty: 3, LastPenalty: t, LastUpdate: t.Add(5 * time.Second)}}
}

func (f *fakeServices) Metrics(bool) []doveadm.Metric {
	return []doveadm.Metric{
		{Name: "auth_success", Field: "duration", Count: 3, Sum: 300, Min: 50, Max: 150, Avg: 100, Variance: 2500,
			Quantile: func(q float64) uint64 { return uint64(50 + 100*q) }},
		{Name: "imap_command_LOGIN", Field: "duration"},
	}
}

func (f *fakeServices) OldStatsDump(level, filter string) (doveadm.OldStats, error) {
	if level != "global" {
		return doveadm.OldStats{}, errors.New("Invalid level")
	}
	return doveadm.OldStats{Keys: []string{"reset_timestamp", "last_update", "num_logins", "num_cmds"},
		Rows: [][]string{{"1795717625", "0.000000", "4", "17"}}}, nil
}

func (f *fakeServices) OldStatsReset() {}

func (f *fakeServices) ProxySessions() []doveadm.ProxySession {
	return []doveadm.ProxySession{
		{User: "user001", Service: "imap", SrcIP: "127.0.0.1", DestIP: "127.0.0.12", DestPort: 143},
		{User: "user002", Service: "pop3", SrcIP: "127.0.0.1", DestIP: "127.0.0.11", DestPort: 110},
	}
}

func (f *fakeServices) ProxyKick(users []string, field, host string) int { return len(users) }

func (f *fakeServices) StopService(names []string) []string {
	var unknown []string
	for _, n := range names {
		if n != "pop3-login" && n != "imap-login" {
			unknown = append(unknown, n)
		}
	}
	return unknown
}

func (f *fakeServices) Reload() error { return nil }
func (f *fakeServices) Stop()         {}
