package doveadm

import (
	"context"
	"net"
	"time"
)

// AdminDialer opens a connection that speaks the director-admin line protocol (reference
// 4.7). socketPath "" means the default in-process director; a value without '/' is
// host[:port] over TCP; a value with '/' is a unix socket path.
type AdminDialer interface {
	DialAdmin(ctx context.Context, socketPath string) (net.Conn, error)
}

// Conn is one proxied session as `who` and `kick` see it.
type Conn struct {
	User    string
	Service string // imap, pop3, lmtp, sieve
	IP      string // client IP, "" if none
	Pid     int    // session identifier shown in the pid columns
}

// PenaltyRecord is one anvil-style auth-failure penalty entry.
type PenaltyRecord struct {
	IP          string
	Penalty     int
	LastPenalty time.Time
	LastUpdate  time.Time
}

// Metric is one (metric, field) row of the 2.3 `stats dump`. Name already carries any
// sub-metric suffix ("imap_command_LOGIN"); Field is "duration" or an extra field key.
type Metric struct {
	Name, Field   string
	Count, Sum    uint64
	Min, Max      uint64
	Avg, Variance float64
	// Quantile returns the q-quantile (0 < q <= 1) of the samples; nil means 0.
	Quantile func(q float64) uint64
}

// OldStats is the seed-era statistics export of one level: header keys and rows of values.
type OldStats struct {
	Keys []string
	Rows [][]string
}

// ProxySession is one proxied connection as `proxy list` shows it.
type ProxySession struct {
	User, Service, SrcIP, DestIP string
	DestPort                     int
}

// Services is everything the doveadm commands need from the rest of usher.
type Services interface {
	AdminDialer
	// UserHash is director_username_hash applied to user (reference 4.2).
	UserHash(user string) (uint32, error)
	// UserList lists the user names the director knows (the userdb iteration of
	// `director map`).
	UserList(ctx context.Context) ([]string, error)

	Sessions() []Conn
	// KickSessions closes every session match accepts and returns their users.
	KickSessions(match func(Conn) bool) (users []string)
	Penalties() []PenaltyRecord

	Metrics(reset bool) []Metric
	// OldStatsDump exports one level (command, session, user, domain, ip, global) with an
	// optional filter; an error means an invalid level or filter.
	OldStatsDump(level, filter string) (OldStats, error)
	OldStatsReset()

	ProxySessions() []ProxySession
	// ProxyKick closes proxied sessions of the users (matched on passdbField when not
	// empty), or of every user proxied to host when host is set; returns how many.
	ProxyKick(users []string, passdbField, host string) int

	// StopService stops listening on the named services and returns the unknown names.
	StopService(names []string) (unknown []string)
	// Reload re-reads the configuration; an error means the old one stays in force.
	Reload() error
	// Stop begins a shutdown. It is called after the response has been written.
	Stop()
}
