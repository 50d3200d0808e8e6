package admin

import (
	"context"
	"net/netip"
	"strconv"

	"github.com/usher-mail/usher/internal/router"
)

// Importer is what USHER-USER-IMPORT needs; *router.Router implements it.
type Importer interface {
	ImportUser(ctx context.Context, hash uint32, ip netip.Addr, ts int64) (router.ImportResult, error)
}

// USHER-USER-IMPORT is usher's own command (Dovecot has none like it): it sets a
// user mapping with a given last-use timestamp, for `usher import`, which
// carries a Dovecot 2.3 director's mappings over.
//
//	USHER-USER-IMPORT <hash> <unix timestamp> <ip>
//
// Replies: OK (written), UNCHANGED (usher had it), NEWER (usher maps the user
// elsewhere, more recently, and keeps that), NOTFOUND (no such backend).
func init() {
	commands["USHER-USER-IMPORT"] = (*Server).userImport
}

func (s *Server) userImport(ctx context.Context, args []string) ([]string, bool) {
	if len(args) < 3 {
		return nil, false
	}
	hash, err1 := strconv.ParseUint(args[0], 10, 32)
	ts, err2 := strconv.ParseInt(args[1], 10, 64)
	ip, _, ok := parseHost(args[2])
	if err1 != nil || err2 != nil || ts <= 0 || !ok {
		return nil, false
	}
	imp, can := s.dir.(Importer)
	if !can {
		return []string{"NOTSUPPORTED"}, true
	}
	res, err := imp.ImportUser(ctx, uint32(hash), ip, ts)
	if err != nil {
		return ok1(err)
	}
	switch res {
	case router.Unchanged:
		return []string{"UNCHANGED"}, true
	case router.KeptNewer:
		return []string{"NEWER"}, true
	}
	return []string{"OK"}, true
}
