// Package status renders usher's status page: the ring and its leader, the
// backends with their state, vhosts, mapped users and live sessions, and the
// recent admin events, as server-rendered HTML (no script, no external
// resource) or plain text. It reads the same services the doveadm API
// answers from: the director-admin protocol of this usher (HOST-LIST,
// DIRECTOR-LIST) and the proxied sessions of proxyList.
package status

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/usher-mail/usher/internal/admin"
)

// Session is one proxied session as the page counts it.
type Session struct {
	User, Service string
	Backend       string // backend IP
}

// Source is where the page reads from.
type Source struct {
	// Admin opens a director-admin connection to this usher (as the API's
	// director commands do with no socketPath).
	Admin func(ctx context.Context) (net.Conn, error)
	// Sessions lists the proxied sessions (proxyList's source).
	Sessions func() []Session
	// Leader is the ring address of the leader, "" while there is none.
	Leader func() string
	Events *Events
	Now    func() time.Time
}

// Member is one director of the ring: a DIRECTOR-LIST row.
type Member struct {
	Addr   string // ip:port of the ring port
	Type   string // self, leader, follower, ... as directorRingStatus shows it
	Status string
	PingMs string
	Leader bool
}

// Backend is one HOST-LIST row with the sessions proxied to it and its
// USHER-HOST-HEALTH row. State is what the page shows in the state column
// ("Up" or "Down"); Cause says who decided it (admin, health), Checks what
// the health checks say (passing, failing; "held up" when an admin's HOST-UP
// overrides failing checks).
type Backend struct {
	IP, Tag    string
	Vhosts     int
	Users      int // mapped users, as directorStatus counts them
	Sessions   int // live sessions through this director
	State      string
	Cause      string
	Checks     string
	LastUpDown time.Time
}

// Count is a number per name (sessions per protocol).
type Count struct {
	Name string
	N    int
}

// Snapshot is everything the page shows, read at one moment.
type Snapshot struct {
	Time         time.Time
	Leader       string
	Ring         []Member
	Backends     []Backend
	Vhosts       int
	MappedUsers  int
	Sessions     int
	SessionUsers int
	PerProtocol  []Count
	Events       []Event
	Errors       []string // what could not be read
}

// adminTimeout bounds the page's own admin commands.
const adminTimeout = 10 * time.Second

// Read takes a snapshot.
func (src *Source) Read(ctx context.Context) *Snapshot {
	snap := &Snapshot{Time: src.Now()}
	if src.Leader != nil {
		snap.Leader = src.Leader()
	}
	if err := src.readAdmin(ctx, snap); err != nil {
		snap.Errors = append(snap.Errors, "director-admin: "+err.Error())
	}
	perBackend := map[string]int{}
	perProto := map[string]int{}
	users := map[string]bool{}
	if src.Sessions != nil {
		for _, s := range src.Sessions() {
			snap.Sessions++
			perBackend[s.Backend]++
			perProto[s.Service]++
			users[s.User] = true
		}
	}
	snap.SessionUsers = len(users)
	for name, n := range perProto {
		snap.PerProtocol = append(snap.PerProtocol, Count{name, n})
	}
	slices.SortFunc(snap.PerProtocol, func(a, b Count) int { return cmp.Compare(a.Name, b.Name) })
	for i := range snap.Backends {
		b := &snap.Backends[i]
		b.Sessions = perBackend[b.IP]
		snap.Vhosts += b.Vhosts
		snap.MappedUsers += b.Users
	}
	if src.Events != nil {
		snap.Events = src.Events.Recent()
	}
	return snap
}

func (src *Source) readAdmin(ctx context.Context, snap *Snapshot) error {
	conn, err := src.Admin(ctx)
	if err != nil {
		return err
	}
	c, err := admin.NewClient(conn, adminTimeout)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.List(func(f []string) error {
		b, err := parseHost(f)
		snap.Backends = append(snap.Backends, b)
		return err
	}, "HOST-LIST"); err != nil {
		return err
	}
	// USHER-HOST-HEALTH: ip state cause checks hold users changed.
	if err := c.List(func(f []string) error {
		if len(f) < 5 {
			return fmt.Errorf("USHER-HOST-HEALTH row with %d fields", len(f))
		}
		for i := range snap.Backends {
			if b := &snap.Backends[i]; b.IP == f[0] {
				b.Cause, b.Checks = f[2], f[3]
				if f[4] == "1" {
					b.Checks = "held up"
				}
			}
		}
		return nil
	}, "USHER-HOST-HEALTH"); err != nil {
		return err
	}
	return c.List(func(f []string) error {
		if len(f) < 5 {
			return fmt.Errorf("DIRECTOR-LIST row with %d fields", len(f))
		}
		m := Member{Addr: net.JoinHostPort(f[0], f[1]), Type: f[2], Status: f[4]}
		if len(f) > 5 && f[2] != "self" {
			m.PingMs = f[5]
		}
		m.Leader = m.Addr == snap.Leader
		snap.Ring = append(snap.Ring, m)
		return nil
	}, "DIRECTOR-LIST")
}

// parseHost reads usher's own HOST-LIST row: ip, vhosts, users, tag, U/D,
// last up/down change.
func parseHost(f []string) (Backend, error) {
	if len(f) < 6 {
		return Backend{}, fmt.Errorf("HOST-LIST row with %d fields", len(f))
	}
	vh, err1 := strconv.Atoi(f[1])
	users, err2 := strconv.Atoi(f[2])
	ts, err3 := strconv.ParseInt(f[5], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Backend{}, fmt.Errorf("HOST-LIST row %q", f)
	}
	b := Backend{IP: f[0], Tag: f[3], Vhosts: vh, Users: users, State: "Up"}
	if f[4] == "D" {
		b.State = "Down"
	}
	if ts > 0 {
		b.LastUpDown = time.Unix(ts, 0)
	}
	return b, nil
}
