package router

import (
	"context"
	"net/netip"

	"github.com/usher-mail/usher/internal/cluster"
)

// ImportResult says what ImportUser did with one mapping.
type ImportResult int

const (
	Imported  ImportResult = iota // the mapping was written
	Unchanged                     // usher already had it (same host, same or newer timestamp)
	KeptNewer                     // usher maps the user elsewhere, more recently: its mapping stays
)

// ImportUser sets the mapping of the user with this hash to the backend ip,
// last used at ts (unix seconds), as a Dovecot 2.3 director being replaced
// had it. It goes through the log like every write and kicks nobody: the
// user's sessions are on that backend already. The user lands in the
// directory of the host's tag. A mapping usher made later than ts wins, so an
// import during a cut-over never moves a user who already logs in through
// usher. ErrNotFound: usher has no such backend.
func (r *Router) ImportUser(ctx context.Context, hash uint32, ip netip.Addr, ts int64) (ImportResult, error) {
	// Logins of the last moments (refreshes, new users' assignments) may not
	// be in the log yet: record them so a user active through usher counts
	// as newer.
	r.syncReads()
	var (
		host     cluster.Host
		known    bool
		old      cluster.User
		existing bool
	)
	r.node.Read(func(s cluster.View) {
		if host, known = s.Host(ip); known {
			old, existing = s.User(host.Tag, hash)
		}
	})
	switch {
	case !known:
		return 0, ErrNotFound
	case existing && old.Host == host.IP && old.Timestamp >= ts:
		return Unchanged, nil
	case existing && old.Host != host.IP && old.Timestamp > ts:
		return KeptNewer, nil
	}
	// OpUserMove keeps the newer of the two timestamps and does no kick.
	_, err := r.apply(ctx, cluster.Command{Op: cluster.OpUserMove, Tag: host.Tag, Hash: hash, IP: host.IP, Now: ts})
	return Imported, err
}
