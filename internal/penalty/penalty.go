// Package penalty keeps Dovecot 2.3's anvil authentication penalties: per
// client IP (IPv6 by /48) a small failure count that delays the next
// authentication attempts, decays after 15 s and is forgotten 29 s after its
// last update. It merges the anvil side (the table) and the auth side (the
// delay and decay rules) because usher has no separate anvil process.
package penalty

import (
	"container/list"
	"hash/crc32"
	"net/netip"
	"sync"
	"time"
)

// Dovecot 2.3's auth-penalty constants.
const (
	initSecs   = 2
	maxSecs    = 15
	MaxPenalty = 4
	// ExpireSecs is how long a record survives its last update: the sum of
	// the delays 2+4+8+15, which the auth process hands to anvil.
	ExpireSecs = initSecs + 4 + 8 + maxSecs

	// DefaultMaxIdents bounds memory under a spray of source addresses; the
	// oldest records go first, as they are the closest to expiring anyway.
	DefaultMaxIdents = 100_000

	// maxChecksums is the length of anvil's list of recent user+password
	// checksums per record.
	maxChecksums = 10
)

// Record is one row of the penalty dump.
type Record struct {
	IP          string // the ident: the client IP, IPv6 masked to /48
	Penalty     int
	LastPenalty time.Time
	LastUpdate  time.Time
}

type record struct {
	ident       string
	penalty     int
	lastPenalty int64 // unix seconds, as anvil keeps it
	lastUpdate  int64
	checksums   []uint32 // most recent first
	elem        *list.Element
}

// Table is safe for concurrent use.
type Table struct {
	now       func() time.Time
	maxIdents int

	mu    sync.Mutex
	byKey map[string]*record
	order *list.List // of *record, oldest update at the front
}

// New returns an empty table reading time from now (time.Now if nil).
func New(now func() time.Time) *Table {
	if now == nil {
		now = time.Now
	}
	return &Table{
		now:       now,
		maxIdents: DefaultMaxIdents,
		byKey:     make(map[string]*record),
		order:     list.New(),
	}
}

// SetMaxIdents changes the table's size bound (values < 1 mean the default).
func (t *Table) SetMaxIdents(n int) {
	if n < 1 {
		n = DefaultMaxIdents
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.maxIdents = n
	t.evictLocked()
}

// Ident is the key a client address is counted under: IPv4 as is, IPv6 with
// everything after the first 48 bits zeroed, so one end site is one client.
func Ident(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(48)
		ip = p.Addr()
	}
	return ip.String()
}

// toSecs is Dovecot's penalty_to_secs: 2·2^p capped at 15.
func toSecs(p int) int64 {
	if p <= 0 {
		return 0
	}
	if p >= 3 {
		return maxSecs
	}
	return int64(initSecs << p)
}

// Begin is called at the start of each authentication. The caller waits
// delay before authenticating and passes attempt (the decayed penalty) to
// Fail or Succeed.
func (t *Table) Begin(ip netip.Addr) (delay time.Duration, attempt int) {
	if !ip.IsValid() {
		return 0, 0
	}
	now := t.now().Unix()
	t.mu.Lock()
	t.expireLocked(now)
	var p int
	var last int64
	if r, ok := t.byKey[Ident(ip)]; ok {
		p, last = r.penalty, r.lastPenalty
	}
	t.mu.Unlock()

	// The drop counter starts at the maximum and falls with p, so in
	// practice the whole penalty is gone once 15 s have passed.
	for drop := MaxPenalty; p > 0 && now-last >= toSecs(drop); drop-- {
		p--
	}
	return time.Duration(toSecs(p)) * time.Second, p
}

// Checksum is anvil's key for "the same user and password again": CRC-32 of
// the password continued over the user name, 0 without a password.
func Checksum(user, password string) uint32 {
	if password == "" {
		return 0
	}
	c := crc32.ChecksumIEEE([]byte(password))
	return crc32.Update(c, crc32.IEEETable, []byte(user))
}

// Fail counts a failed authentication. A client retrying the same wrong
// user+password (a misconfigured phone, say) is not punished twice.
func (t *Table) Fail(ip netip.Addr, attempt int, user, password string) {
	if !ip.IsValid() {
		return
	}
	t.inc(Ident(ip), Checksum(user, password), min(attempt+1, MaxPenalty))
}

// Succeed clears the penalty after a successful authentication. The record
// stays (showing 0) until it expires, as in anvil.
func (t *Table) Succeed(ip netip.Addr, attempt int) {
	if !ip.IsValid() || attempt == 0 {
		return
	}
	t.inc(Ident(ip), 0, 0)
}

// inc is anvil's PENALTY-INC.
func (t *Table) inc(ident string, checksum uint32, value int) {
	now := t.now().Unix()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	r, ok := t.byKey[ident]
	if !ok {
		r = &record{ident: ident}
		t.byKey[ident] = r
		r.elem = t.order.PushBack(r)
	} else {
		t.order.MoveToBack(r.elem)
	}
	switch {
	case checksum == 0:
		r.penalty, r.lastPenalty = value, now
	case r.bumpChecksum(checksum):
		r.penalty = max(value-1, 0)
	default:
		r.addChecksum(checksum)
		r.penalty, r.lastPenalty = value, now
	}
	r.lastUpdate = now
	t.evictLocked()
}

// bumpChecksum reports whether c is among the recent checksums and moves it
// to the front.
func (r *record) bumpChecksum(c uint32) bool {
	for i, v := range r.checksums {
		if v == c {
			copy(r.checksums[1:i+1], r.checksums[:i])
			r.checksums[0] = c
			return true
		}
	}
	return false
}

func (r *record) addChecksum(c uint32) {
	if len(r.checksums) < maxChecksums {
		r.checksums = append(r.checksums, 0)
	}
	copy(r.checksums[1:], r.checksums)
	r.checksums[0] = c
}

// expireLocked drops records whose last update is ExpireSecs or more ago.
// The list is ordered by update, so only its front needs looking at.
func (t *Table) expireLocked(now int64) {
	for e := t.order.Front(); e != nil; e = t.order.Front() {
		r := e.Value.(*record)
		if r.lastUpdate > now-ExpireSecs {
			return
		}
		t.removeLocked(r)
	}
}

func (t *Table) evictLocked() {
	for t.order.Len() > t.maxIdents {
		t.removeLocked(t.order.Front().Value.(*record))
	}
}

func (t *Table) removeLocked(r *record) {
	t.order.Remove(r.elem)
	delete(t.byKey, r.ident)
}

// Dump lists the live records, oldest update first (anvil's PENALTY-DUMP).
func (t *Table) Dump() []Record {
	now := t.now().Unix()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	out := make([]Record, 0, t.order.Len())
	for e := t.order.Front(); e != nil; e = e.Next() {
		r := e.Value.(*record)
		out = append(out, Record{
			IP:          r.ident,
			Penalty:     r.penalty,
			LastPenalty: time.Unix(r.lastPenalty, 0),
			LastUpdate:  time.Unix(r.lastUpdate, 0),
		})
	}
	return out
}

// Len is the number of records, expired ones included until the next access.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.order.Len()
}

// Reset forgets every penalty.
func (t *Table) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byKey = make(map[string]*record)
	t.order.Init()
}
