package admin

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/router"
	"github.com/usher-mail/usher/internal/tabescape"
)

// Director is what the admin protocol drives; *router.Router implements it.
type Director interface {
	Hosts() []router.HostStatus
	RemovedHosts() []netip.Addr
	SetHost(ctx context.Context, ip netip.Addr, tag string, vhosts int, update bool) error
	SetDown(ctx context.Context, ip netip.Addr, down bool) error
	RemoveHost(ctx context.Context, ip netip.Addr) error
	FlushHost(ctx context.Context, ip *netip.Addr) error
	ResetUsers(ctx context.Context, ip *netip.Addr, maxParallel int) error
	LookupUser(userOrHash, tag string) (router.Lookup, error)
	Users(ip *netip.Addr) []router.UserEntry
	Move(ctx context.Context, userOrHash string, ip netip.Addr) error
	// Kick closes the user's sessions on every director.
	Kick(ctx context.Context, user string) error
}

// maxVhosts is the admin socket's limit, as Dovecot's.
const maxVhosts = 1000

type handler func(s *Server, ctx context.Context, args []string) ([]string, bool)

var commands = map[string]handler{
	"HOST-LIST":         (*Server).hostList,
	"HOST-LIST-REMOVED": (*Server).hostListRemoved,
	"DIRECTOR-LIST":     (*Server).directorList,
	"DIRECTOR-ADD":      (*Server).directorAdd,
	"DIRECTOR-REMOVE":   (*Server).directorRemove,
	"HOST-SET":          func(s *Server, ctx context.Context, a []string) ([]string, bool) { return s.hostSet(ctx, a, false) },
	"HOST-UPDATE":       func(s *Server, ctx context.Context, a []string) ([]string, bool) { return s.hostSet(ctx, a, true) },
	"HOST-UP":           func(s *Server, ctx context.Context, a []string) ([]string, bool) { return s.hostUpDown(ctx, a, false) },
	"HOST-DOWN":         func(s *Server, ctx context.Context, a []string) ([]string, bool) { return s.hostUpDown(ctx, a, true) },
	"HOST-REMOVE":       (*Server).hostRemove,
	"HOST-FLUSH":        (*Server).hostFlush,
	"HOST-RESET-USERS":  (*Server).hostResetUsers,
	"USER-LOOKUP":       (*Server).userLookup,
	"USER-LIST":         (*Server).userList,
	"USER-MOVE":         (*Server).userMove,
	"USER-KICK":         (*Server).userKick,
	"USER-KICK-ALT":     (*Server).userKickAlt,
}

// exec runs one command line. ok=false means the line was invalid and the
// connection must be closed, as Dovecot does.
func (s *Server) exec(ctx context.Context, line string) (reply []string, ok bool) {
	if line == "" {
		return nil, false
	}
	f := tabescape.Split(line)
	h, found := commands[f[0]]
	if !found {
		return nil, false
	}
	return h(s, ctx, f[1:])
}

func ok1(err error) ([]string, bool) { return []string{replyFor(err)}, true }

// replyFor renders a director error as the protocol's reply line.
func replyFor(err error) string {
	switch {
	case err == nil:
		return "OK"
	case errors.Is(err, router.ErrNotFound):
		return "NOTFOUND"
	case errors.Is(err, router.ErrTryAgain):
		return "TRYAGAIN"
	case errors.Is(err, router.ErrTagChange), errors.Is(err, router.ErrVhostTooLarge):
		return err.Error()
	}
	// Anything else is a temporary failure the doveadm client shows as is.
	return "Ring sync timed out: " + err.Error()
}

func (s *Server) hostList(ctx context.Context, args []string) ([]string, bool) {
	var out []string
	for _, h := range s.dir.Hosts() {
		ud := "U"
		if h.Down {
			ud = "D"
		}
		out = append(out, tabescape.Join(h.IP.String(), strconv.Itoa(h.VhostCount), strconv.Itoa(h.Users),
			h.Tag, ud, strconv.FormatInt(h.LastUpDown, 10)))
	}
	return append(out, ""), true
}

func (s *Server) hostListRemoved(ctx context.Context, args []string) ([]string, bool) {
	var out []string
	for _, ip := range s.dir.RemovedHosts() {
		out = append(out, ip.String())
	}
	return append(out, ""), true
}

// parseHost reads "ip[@tag]".
func parseHost(arg string) (netip.Addr, string, bool) {
	ipStr, tag, _ := strings.Cut(arg, "@")
	ip, err := netip.ParseAddr(ipStr)
	if err != nil {
		return netip.Addr{}, "", false
	}
	return ip.Unmap(), tag, true
}

func (s *Server) hostSet(ctx context.Context, args []string, update bool) ([]string, bool) {
	if len(args) < 1 || (update && len(args) < 2) {
		return nil, false
	}
	ip, tag, ok := parseHost(args[0])
	if !ok {
		return nil, false
	}
	vhosts := -1
	if len(args) >= 2 {
		n, err := strconv.ParseUint(args[1], 10, 32)
		if err != nil {
			return nil, false
		}
		if n > maxVhosts {
			return []string{router.ErrVhostTooLarge.Error()}, true
		}
		vhosts = int(n)
	}
	return ok1(s.dir.SetHost(ctx, ip, tag, vhosts, update))
}

func (s *Server) hostUpDown(ctx context.Context, args []string, down bool) ([]string, bool) {
	if len(args) < 1 {
		return nil, false
	}
	ip, _, ok := parseHost(args[0])
	if !ok {
		return nil, false
	}
	return ok1(s.dir.SetDown(ctx, ip, down))
}

func (s *Server) hostRemove(ctx context.Context, args []string) ([]string, bool) {
	if len(args) < 1 {
		return nil, false
	}
	ip, _, ok := parseHost(args[0])
	if !ok {
		return nil, false
	}
	return ok1(s.dir.RemoveHost(ctx, ip))
}

// optionalIP reads an optional IP argument where empty means "all".
func optionalIP(args []string) (*netip.Addr, bool) {
	if len(args) == 0 || args[0] == "" {
		return nil, true
	}
	ip, _, ok := parseHost(args[0])
	if !ok {
		return nil, false
	}
	return &ip, true
}

func (s *Server) hostFlush(ctx context.Context, args []string) ([]string, bool) {
	ip, ok := optionalIP(args)
	if !ok {
		return nil, false
	}
	if ip == nil {
		s.log.Warn("director-admin: flushing all users of every host, without kicking them")
	}
	return ok1(s.dir.FlushHost(ctx, ip))
}

func (s *Server) hostResetUsers(ctx context.Context, args []string) ([]string, bool) {
	ip, ok := optionalIP(args)
	if !ok {
		return nil, false
	}
	max := 0
	if len(args) >= 2 {
		n, err := strconv.ParseUint(args[1], 10, 31)
		if err != nil || n == 0 {
			return nil, false
		}
		max = int(n)
	}
	return ok1(s.dir.ResetUsers(ctx, ip, max))
}

func addrOrEmpty(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (s *Server) userLookup(ctx context.Context, args []string) ([]string, bool) {
	if len(args) < 1 {
		return nil, false
	}
	tag := ""
	if len(args) >= 2 {
		tag = args[1]
	}
	l, err := s.dir.LookupUser(args[0], tag)
	if err != nil {
		return []string{"TRYAGAIN"}, true
	}
	return []string{tabescape.Join(addrOrEmpty(l.Current), strconv.FormatInt(l.Expire, 10),
		addrOrEmpty(l.Hashed), addrOrEmpty(l.Initial))}, true
}

func (s *Server) userList(ctx context.Context, args []string) ([]string, bool) {
	ip, ok := optionalIP(args)
	if !ok {
		return nil, false
	}
	var out []string
	for _, u := range s.dir.Users(ip) {
		out = append(out, tabescape.Join(strconv.FormatUint(uint64(u.Hash), 10), strconv.FormatInt(u.Expire, 10), u.Host.String()))
	}
	return append(out, ""), true
}

func (s *Server) userMove(ctx context.Context, args []string) ([]string, bool) {
	if len(args) < 2 {
		return nil, false
	}
	ip, _, ok := parseHost(args[1])
	if !ok {
		return nil, false
	}
	return ok1(s.dir.Move(ctx, args[0], ip))
}

func (s *Server) userKick(ctx context.Context, args []string) ([]string, bool) {
	if len(args) < 1 {
		return nil, false
	}
	return ok1(s.dir.Kick(ctx, args[0]))
}

// userKickAlt kicks by a passdb alternative user name. usher's sessions carry
// no alternative names yet, so nothing matches; the reply is still OK, as
// Dovecot's is when no login process has such a session.
func (s *Server) userKickAlt(ctx context.Context, args []string) ([]string, bool) {
	if len(args) < 2 {
		return nil, false
	}
	return []string{"OK"}, true
}
