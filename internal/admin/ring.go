package admin

import (
	"context"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/director"
	"github.com/usher-mail/usher/internal/tabescape"
)

// Ring is the set of directors as DIRECTOR-LIST/ADD/REMOVE see it.
type Ring interface {
	// List renders DIRECTOR-LIST lines (fields, unescaped).
	List() [][]string
	Add(ctx context.Context, ip netip.Addr, port int) error
	// Remove returns false when no such director is in the ring. port 0
	// matches by IP only.
	Remove(ctx context.Context, ip netip.Addr, port int) (bool, error)
}

// LocalRing is the ring of a single director: itself plus directors an admin
// listed, which it does not connect to.
type LocalRing struct {
	Self     netip.AddrPort
	mu       sync.Mutex
	peers    map[netip.AddrPort]time.Time // removal time; zero while a member
	now      func() time.Time
	keepGone time.Duration
}

// NewLocalRing returns a ring of one.
func NewLocalRing(self netip.AddrPort) *LocalRing {
	return &LocalRing{Self: self, peers: map[netip.AddrPort]time.Time{}, now: time.Now, keepGone: 10 * time.Second}
}

// List implements Ring.
func (r *LocalRing) List() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	type row struct {
		ap   netip.AddrPort
		gone time.Time
	}
	rows := []row{{ap: r.Self}}
	for ap, gone := range r.peers {
		if !gone.IsZero() && now.Sub(gone) > r.keepGone {
			delete(r.peers, ap)
			continue
		}
		rows = append(rows, row{ap, gone})
	}
	sort.Slice(rows, func(i, j int) bool {
		if c := director.CompareAddr(rows[i].ap.Addr(), rows[j].ap.Addr()); c != 0 {
			return c < 0
		}
		return rows[i].ap.Port() < rows[j].ap.Port()
	})
	var out [][]string
	for _, x := range rows {
		ip, port := x.ap.Addr().String(), strconv.Itoa(int(x.ap.Port()))
		switch {
		case x.ap == r.Self:
			out = append(out, []string{ip, port, "self", "0", "ring synced", "0"})
		case x.gone.IsZero():
			out = append(out, []string{ip, port, "", "0", ""})
		default:
			out = append(out, []string{ip, port, "removed", strconv.FormatInt(x.gone.Unix(), 10), ""})
		}
	}
	return out
}

// Add implements Ring.
func (r *LocalRing) Add(ctx context.Context, ip netip.Addr, port int) error {
	ap := netip.AddrPortFrom(ip, uint16(port))
	r.mu.Lock()
	defer r.mu.Unlock()
	if ap != r.Self {
		r.peers[ap] = time.Time{}
	}
	return nil
}

// Remove implements Ring. Removing itself is accepted and changes nothing,
// as in Dovecot.
func (r *LocalRing) Remove(ctx context.Context, ip netip.Addr, port int) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ip == r.Self.Addr() && (port == 0 || port == int(r.Self.Port())) {
		return true, nil
	}
	found := false
	for ap, gone := range r.peers {
		if ap.Addr() == ip && (port == 0 || int(ap.Port()) == port) && gone.IsZero() {
			r.peers[ap] = r.now()
			found = true
		}
	}
	return found, nil
}

func (s *Server) directorList(ctx context.Context, args []string) ([]string, bool) {
	var out []string
	for _, f := range s.ring.List() {
		out = append(out, tabescape.Join(f...))
	}
	return append(out, ""), true
}

func (s *Server) ringArgs(args []string) (netip.Addr, int, bool) {
	if len(args) < 1 {
		return netip.Addr{}, 0, false
	}
	ip, err := netip.ParseAddr(args[0])
	if err != nil {
		return netip.Addr{}, 0, false
	}
	port := 0
	if len(args) >= 2 && args[1] != "" {
		p, err := strconv.ParseUint(args[1], 10, 16)
		if err != nil || p == 0 {
			return netip.Addr{}, 0, false
		}
		port = int(p)
	}
	return ip.Unmap(), port, true
}

func (s *Server) directorAdd(ctx context.Context, args []string) ([]string, bool) {
	ip, port, ok := s.ringArgs(args)
	if !ok {
		return nil, false
	}
	if port == 0 {
		port = s.ringPort()
	}
	return ok1(s.ring.Add(ctx, ip, port))
}

func (s *Server) directorRemove(ctx context.Context, args []string) ([]string, bool) {
	ip, port, ok := s.ringArgs(args)
	if !ok {
		return nil, false
	}
	found, err := s.ring.Remove(ctx, ip, port)
	if err == nil && !found {
		return []string{"NOTFOUND"}, true
	}
	return ok1(err)
}

// ringPort is the director's own ring port, the default for DIRECTOR-ADD.
func (s *Server) ringPort() int {
	for _, f := range s.ring.List() {
		if len(f) > 2 && f[2] == "self" {
			p, _ := strconv.Atoi(f[1])
			return p
		}
	}
	return 9090
}
