// Package dirimport carries a running Dovecot 2.3 director's state into
// usher: its backends (vhost counts, tags, up/down) and every user mapping
// with its last-use time, read and written over the director-admin protocol
// (`usher import`, docs/migrating-from-dovecot.md).
package dirimport

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/usher-mail/usher/internal/admin"
)

// Client is the director-admin client the import reads and writes with.
type Client = admin.Client

// Dial connects to a director-admin socket: a path or host:port.
func Dial(addr string, timeout time.Duration) (*Client, error) { return admin.Dial(addr, timeout) }

// Report counts what an import did. A second import of the same source
// reports everything unchanged.
type Report struct {
	Hosts, HostsAdded, HostsUpdated, HostsUnchanged, HostsFailed                int
	Users, UsersImported, UsersUnchanged, UsersNewer, UsersExpired, UsersFailed int
	// Problems lists what was not imported, and why.
	Problems []string
}

// Changed reports whether the import wrote anything.
func (r Report) Changed() bool { return r.HostsAdded+r.HostsUpdated+r.UsersImported > 0 }

func (r Report) String() string {
	return fmt.Sprintf("hosts: %d read, %d added, %d updated, %d unchanged, %d failed\n"+
		"users: %d read, %d imported, %d unchanged, %d kept (newer in usher), %d expired, %d failed\n",
		r.Hosts, r.HostsAdded, r.HostsUpdated, r.HostsUnchanged, r.HostsFailed,
		r.Users, r.UsersImported, r.UsersUnchanged, r.UsersNewer, r.UsersExpired, r.UsersFailed)
}

// maxProblems keeps the report short when a whole host's users fail.
const maxProblems = 20

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Import reads src (a Dovecot 2.3 director) and writes into dst (usher).
// userExpire is the source's director_user_expire: USER-LIST gives each
// mapping's expiry, and the last use is that minus userExpire. now drops the
// mappings that have expired since they were listed.
func Import(src, dst *Client, userExpire time.Duration, now time.Time) (Report, error) {
	var rep Report
	hosts, err := list(src, "HOST-LIST", ParseHost)
	if err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	users, err := list(src, "USER-LIST", ParseUser)
	if err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	rep.Hosts, rep.Users = len(hosts), len(users)
	current, err := list(dst, "HOST-LIST", ParseHost)
	if err != nil {
		return rep, fmt.Errorf("usher: %w", err)
	}
	have := map[netip.Addr]Host{}
	for _, h := range current {
		have[h.IP] = h
	}
	usable := map[netip.Addr]bool{}
	for _, h := range hosts {
		changed, err := importHost(dst, h, have)
		switch {
		case err != nil:
			rep.HostsFailed++
			rep.problem("host %s: %v", h.IP, err)
			continue
		case changed == hostAdded:
			rep.HostsAdded++
		case changed == hostUpdated:
			rep.HostsUpdated++
		default:
			rep.HostsUnchanged++
		}
		usable[h.IP] = true
	}

	exp := int64(userExpire / time.Second)
	for _, u := range users {
		ts := u.Expire - exp
		if u.Expire <= now.Unix() || ts <= 0 {
			rep.UsersExpired++
			continue
		}
		if !usable[u.IP] {
			rep.UsersFailed++
			rep.problem("user hash %d: backend %s was not imported", u.Hash, u.IP)
			continue
		}
		reply, err := dst.Cmd("USHER-USER-IMPORT", strconv.FormatUint(uint64(u.Hash), 10), strconv.FormatInt(ts, 10), u.IP.String())
		if err != nil {
			return rep, fmt.Errorf("usher: USHER-USER-IMPORT: %w", err)
		}
		switch reply {
		case "OK":
			rep.UsersImported++
		case "UNCHANGED":
			rep.UsersUnchanged++
		case "NEWER":
			rep.UsersNewer++
		default:
			rep.UsersFailed++
			rep.problem("user hash %d on %s: usher replied %q", u.Hash, u.IP, trunc(reply))
		}
	}
	return rep, nil
}

type hostChange int

const (
	hostSame hostChange = iota
	hostUpdated
	hostAdded // an added host counts as added even when it is then set down
)

// importHost makes usher's host h look like the source's: added, vhost
// count, up or down. A tag cannot change on a host that exists (usher, like
// Dovecot, refuses it), so that is an error for the operator to resolve.
func importHost(dst *Client, h Host, have map[netip.Addr]Host) (hostChange, error) {
	ip := h.IP.String()
	cur, exists := have[h.IP]
	change := hostSame
	if !exists {
		arg := ip
		if h.Tag != "" {
			arg += "@" + h.Tag
		}
		if err := expectOK(dst.Cmd("HOST-SET", arg, strconv.Itoa(h.Vhosts))); err != nil {
			return 0, err
		}
		cur = Host{IP: h.IP, Tag: h.Tag, Vhosts: h.Vhosts}
		change = hostAdded
	}
	if cur.Tag != h.Tag {
		return 0, fmt.Errorf("usher has it with tag %q, the source with %q; remove it from usher first", cur.Tag, h.Tag)
	}
	if cur.Vhosts != h.Vhosts {
		if err := expectOK(dst.Cmd("HOST-UPDATE", ip, strconv.Itoa(h.Vhosts))); err != nil {
			return 0, err
		}
		change = max(change, hostUpdated)
	}
	if cur.Down != h.Down {
		cmd := "HOST-UP"
		if h.Down {
			cmd = "HOST-DOWN"
		}
		if err := expectOK(dst.Cmd(cmd, ip)); err != nil {
			return 0, err
		}
		change = max(change, hostUpdated)
	}
	return change, nil
}

func expectOK(reply string, err error) error {
	if err != nil {
		return err
	}
	if reply != "OK" {
		return fmt.Errorf("usher replied %q", trunc(reply))
	}
	return nil
}

// list runs a listing command and parses every row; a bad row fails it all.
func list[T any](c *Client, cmd string, parse func([]string) (T, error)) ([]T, error) {
	var out []T
	err := c.List(func(f []string) error {
		v, err := parse(f)
		out = append(out, v)
		return err
	}, cmd)
	return out, err
}
