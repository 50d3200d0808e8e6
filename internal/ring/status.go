package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
	"github.com/usher-mail/usher/internal/director"
)

// syncedLag: a peer at most this many entries behind counts as synced.
const syncedLag = 100

// probe pings every other voter each PingInterval, for DIRECTOR-LIST.
func (r *Ring) probe() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		servers, err := r.node.Servers()
		if err != nil {
			continue
		}
		keep := map[string]bool{}
		var wg sync.WaitGroup
		for _, s := range servers {
			keep[s.Address] = true
			if s.ID == r.node.ID() {
				continue
			}
			wg.Add(1)
			go func(addr string) {
				defer wg.Done()
				r.ping(addr)
			}(s.Address)
		}
		wg.Wait()
		r.peers.forget(keep)
	}
}

func (r *Ring) ping(addr string) {
	p := r.peers.get(addr)
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.PingInterval)
	defer cancel()
	start := time.Now()
	ans, err := r.rpc.call(ctx, addr, opPing, nil)
	if err == nil {
		err = p.takePing(ans)
	}
	if err != nil {
		p.reachable.Store(false)
		r.peers.failed(addr)
		return
	}
	p.pingMicros.Store(time.Since(start).Microseconds())
	p.reachable.Store(true)
	p.lastPingAns.Store(time.Now().Unix())
}

func (p *peerStats) takePing(b []byte) error {
	role, b, err := readStr(b)
	if err != nil {
		return err
	}
	applied, k := binary.Uvarint(b)
	if k <= 0 {
		return errors.New("ring: bad ping answer")
	}
	p.role.Store(role)
	p.applied.Store(applied)
	return nil
}

// List implements admin.Ring: DIRECTOR-LIST rows, 12 fields each (see
// docs/cluster.md for what each column holds), sorted by IP then port.
func (r *Ring) List() [][]string {
	servers, err := r.node.Servers()
	if err != nil {
		return nil
	}
	type row struct {
		ap     netip.AddrPort
		fields []string
	}
	var rows []row
	st := r.node.Stats()
	commit, _ := strconv.ParseUint(st["commit_index"], 10, 64)
	applied := r.node.AppliedIndex()
	for _, s := range servers {
		ap, _ := netip.ParseAddrPort(s.Address)
		ip, port := s.Address, ""
		if ap.IsValid() {
			ip, port = ap.Addr().String(), strconv.Itoa(int(ap.Port()))
		}
		var f []string
		if s.ID == r.node.ID() {
			f = r.selfRow(ip, port, commit, applied)
		} else {
			f = r.peerRow(ip, port, s.Address, applied)
		}
		rows = append(rows, row{ap, f})
	}
	for addr, failed := range r.peers.removedList() {
		if !listed(servers, addr) {
			ap, _ := netip.ParseAddrPort(addr)
			rows = append(rows, row{ap, []string{ap.Addr().String(), strconv.Itoa(int(ap.Port())), "removed", itoa(failed), ""}})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if c := director.CompareAddr(rows[i].ap.Addr(), rows[j].ap.Addr()); c != 0 {
			return c < 0
		}
		return rows[i].ap.Port() < rows[j].ap.Port()
	})
	out := make([][]string, len(rows))
	for i, x := range rows {
		out[i] = x.fields
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func listed(servers []cluster.Server, addr string) bool {
	for _, s := range servers {
		if s.Address == addr {
			return true
		}
	}
	return false
}

func (r *Ring) selfRow(ip, port string, commit, applied uint64) []string {
	t := &r.peers.total
	status := "ring handshaking"
	if addr, _ := r.node.Leader(); addr != "" {
		status = "ring syncing"
		if applied >= commit {
			status = "ring synced"
		}
	}
	switch role := r.node.Role(); role {
	case "Leader", "Follower", "Candidate":
		status += ", " + lower(role)
	}
	buf, peak := r.peers.buffered(t)
	return []string{ip, port, "self", itoa(t.lastFailed.Load()), status, "0",
		itoa(t.in.Load()), itoa(t.out.Load()), itoa(buf), itoa(peak),
		itoa(t.lastRead.Load()), itoa(t.lastWrite.Load())}
}

func (r *Ring) peerRow(ip, port, addr string, applied uint64) []string {
	p := r.peers.get(addr)
	typ, status, ping := "", "unreachable", "0"
	var behind uint64
	if p.reachable.Load() {
		typ = lower(p.role.Load().(string))
		if pa := p.applied.Load(); applied > pa {
			behind = applied - pa
		}
		status = "synced"
		if behind > syncedLag {
			status = "syncing"
		}
		ping = itoa(p.pingMicros.Load() / 1000)
	}
	buf, peak := r.peers.buffered(p)
	return []string{ip, port, typ, itoa(p.lastFailed.Load()), status, ping,
		itoa(p.in.Load()), itoa(p.out.Load()), itoa(buf), itoa(peak),
		itoa(p.lastRead.Load()), itoa(p.lastWrite.Load())}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Add implements admin.Ring: DIRECTOR-ADD adds a voter through the leader.
// Adding a member again answers OK, as Dovecot does.
func (r *Ring) Add(ctx context.Context, ip netip.Addr, port int) error {
	addr := netip.AddrPortFrom(ip.Unmap(), uint16(port)).String()
	r.peers.unremove(addr)
	return r.node.AddVoter(ctx, addr, addr)
}

// Remove implements admin.Ring. Port 0 matches by IP only. Removing the
// director itself is accepted and changes nothing, as in Dovecot; run it on
// another director.
func (r *Ring) Remove(ctx context.Context, ip netip.Addr, port int) (bool, error) {
	servers, err := r.node.Servers()
	if err != nil {
		return false, err
	}
	found := false
	for _, s := range servers {
		ap, err := netip.ParseAddrPort(s.Address)
		if err != nil || ap.Addr().Unmap() != ip.Unmap() || (port != 0 && int(ap.Port()) != port) {
			continue
		}
		found = true
		if s.ID == r.node.ID() {
			continue
		}
		if err := r.node.RemoveServer(ctx, s.ID); err != nil {
			return true, err
		}
		r.peers.markRemoved(s.Address)
	}
	return found, nil
}
