// Package cluster holds usher's replicated director state: backend hosts and
// user->host mappings (reference 4.3-4.7), kept by a pure state machine that
// hashicorp/raft replicates through a log stored in state_dir.
//
// The state machine is pure in the Consul sense: Apply does no I/O, reads no
// clock and uses no randomness. Every Command carries the time it was decided
// at, so replaying the log on any node gives the same state.
package cluster

import (
	"net/netip"
	"slices"

	"github.com/usher-mail/usher/internal/director"
)

// maxHosts bounds the host table: users refer to hosts by a uint16 slot.
const maxHosts = 1 << 16

// Host is one mail backend: the ring's view of it (address, tag, vhost
// count, up or down, the name it came from) and the history only the
// replicated state keeps.
type Host struct {
	director.Host
	LastUpDown int64 // unix seconds of the last up/down change, 0 = never

	// Why the host is in its up/down state, kept apart from Down so that the
	// doveadm replies (which know only up/down) stay Dovecot's. See health.go.
	Cause Cause
	// HealthDown is the last verdict of usher's health checks that reached
	// the log: true after OpHealthDown, false after OpHealthUp.
	HealthDown bool
	// HoldUp: an admin put the host up while the checks said down; the
	// checks leave it up until they have passed again and then fail anew.
	HoldUp bool
}

// User is one user->host mapping. Timestamp is the last time the mapping
// was used; it expires at Timestamp + director_user_expire.
type User struct {
	Tag       string
	Hash      uint32
	Host      netip.Addr
	Timestamp int64
}

// UserKey names a user in the directory.
type UserKey struct {
	Tag  string
	Hash uint32
}

// Op is the kind of a Command.
type Op uint8

const (
	OpInvalid     Op = iota
	OpHostSet        // add a host or change its vhost count (HOST-SET)
	OpHostUpdate     // like OpHostSet, but the host must exist (HOST-UPDATE)
	OpHostUp         // HOST-UP
	OpHostDown       // HOST-DOWN
	OpHostRemove     // remove a host and drop its users (HOST-REMOVE)
	OpHostFlush      // drop the users of IP, or of every host with All (HOST-FLUSH)
	OpUserAssign     // map a user at login, unless it is already mapped
	OpUserMove       // force a user onto a host (USER-MOVE)
	OpUserRefresh    // bump timestamps of Users to Now (proxy-notify)
	OpUserDrop       // forget one user
	OpExpire         // garbage-collect users expired at Now
	OpInitHosts      // apply director_mail_servers (see applyInitHosts)
	OpKick           // close sessions on every director; changes no state (see Config.OnKick)
	OpHealthDown     // the health checks found the host failing (see health.go)
	OpHealthUp       // the health checks found the host passing again
	OpUserRecord     // a director's batch of logins: new users' assignments and refreshes (Records)
	opCount
)

var opNames = [...]string{"invalid", "host-set", "host-update", "host-up", "host-down",
	"host-remove", "host-flush", "user-assign", "user-move", "user-refresh", "user-drop",
	"expire", "init-hosts", "kick", "health-down", "health-up", "user-record"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "op?"
}

// Command is one state change as it goes into the raft log.
type Command struct {
	Op         Op
	IP         netip.Addr
	All        bool // OpHostFlush: every host
	Tag        string
	VhostCount int // -1 = not given
	Hash       uint32
	Users      []UserKey // OpUserRefresh batch
	Hosts      []Host    // OpInitHosts
	Now        int64     // unix seconds the command was decided at
	Expire     int64     // director_user_expire in seconds (OpUserAssign, OpExpire)
	User       string    // OpKick: login name to kick ("" = by Tag/Hash)
	Text       string    // OpKick: the reason sessions are told
	Records    []Record  // OpUserRecord batch, in the order the logins happened
}

// Record is one login in an OpUserRecord batch. A director routes a new user
// from its own copy of the vhost ring at once and records the choice later,
// many users per log entry. IP is the backend it routed the user to; an
// invalid IP only refreshes a mapped user's timestamp.
//
// Applying a record keeps a mapping that is live at TS (refreshing it), so
// the first assignment of a user that commits wins; otherwise it maps the
// user to IP if that host still exists. Gen is the host generation the
// director computed IP on; the decision does not use it (the user is already
// logged in on IP, refusing the record would not undo that), the director
// logs it with a conflict.
type Record struct {
	Tag  string
	Hash uint32
	IP   netip.Addr
	Gen  uint64
	TS   int64 // unix seconds of the login
}

// Code is the outcome of a Command.
type Code uint8

const (
	OK            Code = iota
	NotFound           // host (or user for OpUserDrop) does not exist
	TagChange          // "host tag can't be changed"
	VhostTooLarge      // "vhost count too large"
	Invalid            // malformed command; never produced by well-formed callers
	TooManyHosts       // the host table is full
)

var codeNames = [...]string{"OK", "NOTFOUND", "host tag can't be changed",
	"vhost count too large", "invalid command", "too many hosts"}

// String gives the director-admin reply text for the code.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "code?"
}

// Result is what applying a Command did.
type Result struct {
	Code    Code
	User    User // OpUserAssign, OpUserMove: the effective mapping
	Dropped int  // users dropped by remove, flush, drop or expire
	// Hosts, for OpUserRecord, is each record's user's backend after the
	// entry (invalid: not mapped), in the order of Command.Records.
	Hosts []netip.Addr
}

// hostRec is a Host plus the slot its users refer to it by.
type hostRec struct {
	Host
	slot uint16
}

// State is the director state. It is not safe for concurrent use; Node
// serialises access.
type State struct {
	hosts      []hostRec      // sorted by director.CompareAddr
	slotIP     []netip.Addr   // slot -> IP; invalid Addr = free slot
	slotUsers  []int          // slot -> number of mapped users
	freeSlots  []uint16       // reusable slots, used LIFO
	tags       []*tagDir      // creation order
	tagIndex   map[string]int // tag -> index in tags
	configured []Host         // last director_mail_servers applied, sorted
	inited     bool           // OpInitHosts has run once
	// hostGen counts changes to the host table (set, update, up, down,
	// remove, init). Equal generations mean equal host tables, so a director
	// keys its vhost ring cache on it and records it with assignments.
	hostGen uint64
}

// NewState returns an empty, uninitialised state.
func NewState() *State {
	return &State{tagIndex: make(map[string]int)}
}

// normIP is how the state stores an address: IPv4-mapped as IPv4, no zone.
// Hosts are kept in director.CompareAddr order, Dovecot's; normalised, an
// IPv4-mapped address never meets its IPv4 form there.
func normIP(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

func (s *State) findHost(ip netip.Addr) (int, bool) {
	return slices.BinarySearchFunc(s.hosts, ip, func(h hostRec, ip netip.Addr) int {
		return director.CompareAddr(h.IP, ip)
	})
}

func (s *State) hostRec(ip netip.Addr) *hostRec {
	if !ip.IsValid() {
		return nil
	}
	if i, ok := s.findHost(normIP(ip)); ok {
		return &s.hosts[i]
	}
	return nil
}

// addHost inserts h, which must not exist yet.
func (s *State) addHost(h Host) Code {
	var slot uint16
	switch {
	case len(s.freeSlots) > 0:
		slot = s.freeSlots[len(s.freeSlots)-1]
		s.freeSlots = s.freeSlots[:len(s.freeSlots)-1]
		s.slotIP[slot] = h.IP
	case len(s.slotIP) < maxHosts:
		slot = uint16(len(s.slotIP))
		s.slotIP = append(s.slotIP, h.IP)
		s.slotUsers = append(s.slotUsers, 0)
	default:
		return TooManyHosts
	}
	i, _ := s.findHost(h.IP)
	s.hosts = slices.Insert(s.hosts, i, hostRec{Host: h, slot: slot})
	s.tag(h.Tag)
	return OK
}

func (s *State) removeHost(i int) int {
	slot := s.hosts[i].slot
	dropped := s.dropUsers(func(sl uint16) bool { return sl == slot })
	s.hosts = slices.Delete(s.hosts, i, i+1)
	s.slotIP[slot] = netip.Addr{}
	s.freeSlots = append(s.freeSlots, slot)
	return dropped
}

// tag returns the directory of a tag, creating it on first use so that
// USER-LIST can list tags in creation order.
func (s *State) tag(name string) *tagDir {
	if i, ok := s.tagIndex[name]; ok {
		return s.tags[i]
	}
	d := newTagDir(name)
	s.tagIndex[name] = len(s.tags)
	s.tags = append(s.tags, d)
	return d
}

func (s *State) lookupTag(name string) *tagDir {
	if i, ok := s.tagIndex[name]; ok {
		return s.tags[i]
	}
	return nil
}

// dropUsers forgets every user whose host slot matches and returns how many.
func (s *State) dropUsers(match func(uint16) bool) int {
	n := 0
	for _, d := range s.tags {
		n += d.removeIf(func(e *entry) bool {
			if match(e.host) {
				s.slotUsers[e.host]--
				return true
			}
			return false
		})
	}
	return n
}
