package login

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/proxyproto"
)

// Which relayed mechanisms a front-end advertises is learned from the backends: every
// backend's own list (IMAP CAPABILITY AUTH=, POP3 CAPA SASL, ManageSieve "SASL") as usher's
// relayed logins there read it, and as a probe reads it from every backend the director knows, at
// start and then at most once a minute while clients come. A mechanism is offered when every
// backend whose list is known offers it; a backend that could not be asked counts for
// nothing either way. Never advertised when usher checks passwords itself (it cannot check a
// token or a proof) or before any backend has answered.

// RelayAllowed reports whether relayed mechanisms may be offered: not when usher checks
// passwords itself (a Passdb that says it ChecksPasswords, or one that cannot say), as it
// could not check a token or a SCRAM proof and would refuse every such login.
func (e *Env) RelayAllowed() bool {
	switch p := e.Passdb.(type) {
	case nopPassdb:
		return true
	case interface{ ChecksPasswords() bool }:
		return !p.ChecksPasswords()
	}
	return false
}

// PlaintextMech reports whether relayed mechanism mech carries a secret the way a plaintext
// password does (an OAuth2 bearer token), so that disable_plaintext_auth hides and refuses
// it on an insecure connection as it does PLAIN; SCRAM sends no reusable secret.
func PlaintextMech(mech string) bool { return mech == "XOAUTH2" || mech == "OAUTHBEARER" }

// Mechs is one front-end's knowledge of its backends' mechanisms. The zero value knows
// nothing and probes nothing; set Probe and Hosts to have it ask the backends itself.
type Mechs struct {
	// Probe asks one backend for its mechanism list (upper case), within ctx.
	Probe func(ctx context.Context, backend netip.Addr) ([]string, error)
	// Hosts lists the backends of the director; nil: learn from logins only.
	Hosts func() []netip.Addr

	mu      sync.Mutex
	seen    map[netip.Addr]mechList
	probing bool
	probed  time.Time
	// offered is the last answer of Offered, computed at computed; Learn clears it when a
	// backend's list changes.
	offered  []string
	computed time.Time
}

type mechList struct {
	relayed []string // the relayed mechanisms the backend offers, in relayedMechs order
	at      time.Time
}

const (
	// mechProbeEvery is how often the backends are asked again (while clients come).
	mechProbeEvery = time.Minute
	// mechForget: a list older than this no longer counts (a backend long gone or silent).
	mechForget = 10 * time.Minute
	// mechProbeTimeout bounds one backend's probe; mechProbeParallel the probes at once.
	mechProbeTimeout  = 5 * time.Second
	mechProbeParallel = 4
	maxMechBackends   = 4096
)

// Learn records the mechanisms a backend listed (any case; others than the relayed ones are
// ignored).
func (m *Mechs) Learn(backend netip.Addr, listed []string) {
	var rel []string
	for _, r := range relayedMechs {
		for _, l := range listed {
			if strings.EqualFold(l, r.name) {
				rel = append(rel, r.name)
				break
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil || len(m.seen) >= maxMechBackends {
		m.seen = map[netip.Addr]mechList{}
	}
	if old, ok := m.seen[backend]; !ok || strings.Join(old.relayed, " ") != strings.Join(rel, " ") {
		m.computed = time.Time{}
	}
	m.seen[backend] = mechList{relayed: rel, at: time.Now()}
}

// mechRecompute: Offered answers from its last result for this long (every greeting asks).
const mechRecompute = 5 * time.Second

// Offered returns the relayed mechanisms every backend with a known, recent list offers, in
// a fixed order; nil when none is known. It starts a probe of the backends in the background
// when the last one is over a minute old.
func (m *Mechs) Offered() []string {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.probeLocked(now)
	if now.Sub(m.computed) < mechRecompute {
		return m.offered
	}
	m.offered, m.computed = m.offeredLocked(now), now
	return m.offered
}

func (m *Mechs) offeredLocked(now time.Time) []string {
	var out []string
	known := false
	counts := map[string]int{}
	n := 0
	for _, l := range m.seen {
		if now.Sub(l.at) > mechForget {
			continue
		}
		known = true
		n++
		for _, r := range l.relayed {
			counts[r]++
		}
	}
	if !known {
		return nil
	}
	for _, r := range relayedMechs {
		if counts[r.name] == n {
			out = append(out, r.name)
		}
	}
	return out
}

// Offers reports whether mech is among Offered.
func (m *Mechs) Offers(mech string) bool {
	for _, o := range m.Offered() {
		if o == mech {
			return true
		}
	}
	return false
}

// Refresh starts a probe of every backend in the background unless one ran within the last
// minute or is running.
func (m *Mechs) Refresh() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.probeLocked(time.Now())
}

func (m *Mechs) probeLocked(now time.Time) {
	if m.Probe == nil || m.Hosts == nil || m.probing || now.Sub(m.probed) < mechProbeEvery {
		return
	}
	m.probing, m.probed = true, now
	go m.probeAll()
}

// probeAll asks every backend, a few at a time, each within mechProbeTimeout.
func (m *Mechs) probeAll() {
	defer func() {
		m.mu.Lock()
		m.probing = false
		m.mu.Unlock()
	}()
	hosts := m.Hosts()
	sem := make(chan struct{}, mechProbeParallel)
	var wg sync.WaitGroup
	for _, h := range hosts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), mechProbeTimeout)
			defer cancel()
			if listed, err := m.Probe(ctx, h); err == nil {
				m.Learn(h, listed)
			}
		}()
	}
	wg.Wait()
	// Backends no longer in the director's list no longer count.
	keep := map[netip.Addr]bool{}
	for _, h := range hosts {
		keep[h] = true
	}
	m.mu.Lock()
	for a := range m.seen {
		if !keep[a] {
			delete(m.seen, a)
			m.computed = time.Time{}
		}
	}
	m.mu.Unlock()
}

// RelayMechs are the relayed mechanisms a front-end offers a client: those m learned from
// the backends, when RelayAllowed, without the plaintext ones where plaintext is not
// allowed (plaintextOK).
func (e *Env) RelayMechs(m *Mechs, plaintextOK bool) []string {
	if !e.RelayAllowed() {
		return nil
	}
	offered := m.Offered()
	if plaintextOK {
		return offered
	}
	var out []string
	for _, o := range offered {
		if !PlaintextMech(o) {
			out = append(out, o)
		}
	}
	return out
}

// MechVerdict is whether a client may use a mechanism (CheckMech).
type MechVerdict int

const (
	MechOK          MechVerdict = iota
	MechUnsupported             // not PLAIN, LOGIN or a relayed one the backends offer
	MechPlaintext               // a plaintext mechanism where plaintext is not allowed
)

// CheckMech says whether a client may authenticate with mech (upper case): PLAIN and LOGIN,
// and the relayed mechanisms m offers; a plaintext one only where plaintext is allowed.
func (e *Env) CheckMech(m *Mechs, mech string, plaintextOK bool) MechVerdict {
	relayed := IsRelayed(mech)
	switch {
	case mech != "PLAIN" && mech != "LOGIN" && !(relayed && slices.Contains(e.RelayMechs(m, true), mech)):
		return MechUnsupported
	case !plaintextOK && (!relayed || PlaintextMech(mech)):
		return MechPlaintext
	}
	return MechOK
}

// ProbeBackend connects to backend as a login would (backend_ssl included; with
// backend_proxy_protocol a PROXY v2 LOCAL header, as there is no client to name) and runs ask
// on the stream, which it then closes: a front-end's Mechs.Probe, with ask reading the
// protocol's mechanism list.
func (c Config) ProbeBackend(ctx context.Context, backend netip.Addr, ask func(nc net.Conn, br *bufio.Reader) ([]string, error)) ([]string, error) {
	var mechs []string
	var err error
	var header []byte
	if c.BackendProxyProtocol {
		header = proxyproto.AppendLocalV2(nil)
	}
	DialBackend(ctx, netip.AddrPortFrom(backend, uint16(c.BackendPort)), c.BackendSSL, c.BackendTLS, header,
		func(nc net.Conn, br *bufio.Reader) (*Session, Result) {
			mechs, err = ask(nc, br)
			return nil, Result{Kind: ResultConfig} // not a session: DialBackend closes the stream
		})
	return mechs, err
}
