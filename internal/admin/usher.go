package admin

import (
	"context"
	"net/netip"
	"strconv"

	"github.com/usher-mail/usher/internal/router"
	"github.com/usher-mail/usher/internal/tabescape"
)

// usher's own commands on the director-admin socket. Their names start
// with USHER-, which no Dovecot client sends, so Dovecot's protocol is
// unchanged:
//
//	USHER-HOST-HEALTH                  every host: ip state cause checks hold users changed, then ""
//	USHER-HOST-DRAIN ip [max-parallel]  start (or join) a drain: one progress line, NOTFOUND
//	USHER-REBALANCE [max-parallel]      start (or join) a rebalance: one progress line
//	USHER-JOBS                         progress lines of this director's jobs, then ""
//
// A progress line is: job host state users-left sessions-left in-flight
// peak-in-flight moved failed total max-parallel error.

// Mover is what the USHER- commands drive; *router.Router implements it.
type Mover interface {
	Drain(ctx context.Context, ip netip.Addr, maxParallel int) (router.Progress, error)
	Rebalance(ctx context.Context, maxParallel int) (router.Progress, error)
	Jobs() []router.Progress
}

func init() {
	commands["USHER-HOST-HEALTH"] = (*Server).usherHostHealth
	commands["USHER-HOST-DRAIN"] = (*Server).usherHostDrain
	commands["USHER-REBALANCE"] = (*Server).usherRebalance
	commands["USHER-JOBS"] = (*Server).usherJobs
}

func (s *Server) usherHostHealth(ctx context.Context, args []string) ([]string, bool) {
	var out []string
	for _, h := range s.dir.Hosts() {
		state, checks, hold := "up", "passing", "0"
		if h.Down {
			state = "down"
		}
		if h.HealthDown {
			checks = "failing"
		}
		if h.HoldUp {
			hold = "1"
		}
		out = append(out, tabescape.Join(h.IP.String(), state, h.Cause.String(), checks, hold,
			strconv.Itoa(h.Users), strconv.FormatInt(h.LastUpDown, 10)))
	}
	return append(out, ""), true
}

// optionalCount reads an optional positive count argument (0: not given).
func optionalCount(args []string, i int) (int, bool) {
	if len(args) <= i || args[i] == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(args[i], 10, 31)
	if err != nil || n == 0 {
		return 0, false
	}
	return int(n), true
}

func (s *Server) usherHostDrain(ctx context.Context, args []string) ([]string, bool) {
	m, isMover := s.dir.(Mover)
	if len(args) < 1 || !isMover {
		return nil, false
	}
	ip, _, ok := parseHost(args[0])
	if !ok {
		return nil, false
	}
	max, ok := optionalCount(args, 1)
	if !ok {
		return nil, false
	}
	p, err := m.Drain(ctx, ip, max)
	if err != nil {
		return ok1(err)
	}
	return []string{progressLine(p)}, true
}

func (s *Server) usherRebalance(ctx context.Context, args []string) ([]string, bool) {
	m, isMover := s.dir.(Mover)
	max, ok := optionalCount(args, 0)
	if !ok || !isMover {
		return nil, false
	}
	p, err := m.Rebalance(ctx, max)
	if err != nil {
		return ok1(err)
	}
	return []string{progressLine(p)}, true
}

func (s *Server) usherJobs(ctx context.Context, args []string) ([]string, bool) {
	m, isMover := s.dir.(Mover)
	if !isMover {
		return nil, false
	}
	var out []string
	for _, p := range m.Jobs() {
		out = append(out, progressLine(p))
	}
	return append(out, ""), true
}

func progressLine(p router.Progress) string {
	itoa := strconv.Itoa
	return tabescape.Join(p.Kind, addrOrEmpty(p.Host), p.State, itoa(p.UsersLeft), itoa(p.SessionsLeft),
		itoa(p.InFlight), itoa(p.PeakInFlight), itoa(p.Moved), itoa(p.Failed), itoa(p.Total),
		itoa(p.MaxParallel), p.Err)
}
