package imap

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/relay"
)

// backendLine reads one response line from the backend.
func backendLine(br *bufio.Reader) (string, error) {
	r := reader{br: br, maxCommand: 64 << 10}
	return r.readLine(r.maxCommand)
}

// backendDialogue logs cr in on a backend stream the way Dovecot's imap proxy does: banner,
// optional STARTTLS, CAPABILITY when unknown, ID with the client's address, then LOGIN (or
// AUTHENTICATE PLAIN when the backend disables LOGIN, for a master user or the passdb's
// proxy_mech). The passdb's fields (login.TargetOf) decide TLS, the credentials, the ID and
// the pipelining.
func (c *conn) backendDialogue(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort, tag string, cr login.Creds) (*login.Session, login.Result) {
	tg := login.TargetOf(ctx)
	nc, br, caps, res := c.backendHello(tg, nc, br, dest)
	if res.Kind != login.ResultOK {
		return nil, res
	}
	// ID goes in front of the login, pipelined, so the backend logs the real client.
	chunks, refused := loginChunks(tg.Creds(cr), caps, tg.SASL())
	if refused != nil {
		return nil, *refused
	}
	first, stop := c.idFirst(ctx, tg, nc, br, caps, 256+len(chunks[0]))
	if stop != nil {
		return nil, *stop
	}
	first = append(first, chunks[0]...)
	chunks = chunks[1:]
	if _, err := nc.Write(first); err != nil {
		return nil, login.Unavailable("sending login: %w", err)
	}
	var postCaps string
	for {
		line, err := backendLine(br)
		if err != nil {
			return nil, login.Unavailable("reading login reply: %w", err)
		}
		switch {
		case strings.HasPrefix(line, "+"):
			if len(chunks) == 0 {
				return nil, login.Unavailable("unexpected continuation")
			}
			if _, err := nc.Write([]byte(chunks[0])); err != nil {
				return nil, login.Unavailable("sending login: %w", err)
			}
			chunks = chunks[1:]
		case strings.HasPrefix(line, "L "):
			return c.loginReply(nc, br, tag, line[2:], postCaps)
		default:
			// Untagged data, BYE and the ID reply are the proxy's business, not the client's.
			if rest, ok := cutPrefixFold(line, "* CAPABILITY "); ok {
				postCaps = rest
			}
		}
	}
}

// idFirst starts the bytes to send in front of the login, room bytes large: the ID command
// that tells the backend who the client is, when the backend takes it and is trusted with it;
// under proxy_nopipelining it has been sent and answered already, and nothing is left.
func (c *conn) idFirst(ctx context.Context, tg *login.Target, nc net.Conn, br *bufio.Reader, caps capSet, room int) ([]byte, *login.Result) {
	first := make([]byte, 0, room)
	if !caps.has("ID") || !tg.Trusted() {
		return first, nil
	}
	first = c.appendID(first, c.ForwardFields(ctx))
	if tg.Pipelining() {
		return first, nil
	}
	// proxy_nopipelining: the ID's answer before the login
	if _, err := nc.Write(first); err != nil {
		res := login.Unavailable("sending ID: %w", err)
		return nil, &res
	}
	if line, _, err := untilTagged(br, "I "); err != nil {
		res := login.Unavailable("ID: %q %v", line, err)
		return nil, &res
	}
	return first[:0], nil
}

// backendHello reads the backend's banner, runs STARTTLS when backend_ssl says so and asks
// for the capabilities when the banner (or STARTTLS) left them unknown. It returns the
// stream to log in on, TLS or not, and a ResultOK.
func (c *conn) backendHello(tg *login.Target, nc net.Conn, br *bufio.Reader, dest netip.AddrPort) (net.Conn, *bufio.Reader, capSet, login.Result) {
	ssl, tlsConf := tg.BackendTLS(c.s.cfg.BackendSSL, c.s.cfg.BackendTLS)
	fail := func(res login.Result) (net.Conn, *bufio.Reader, capSet, login.Result) { return nil, nil, capSet{}, res }
	banner, err := backendLine(br)
	if err != nil {
		return fail(login.Unavailable("reading banner: %w", err))
	}
	if !strings.HasPrefix(banner, "* OK ") {
		return fail(login.Unavailable("bad banner %q", banner))
	}
	caps, _ := capabilityCode(banner[len("* OK "):])
	if ssl == "starttls" {
		if caps.known && !caps.has("STARTTLS") {
			return fail(login.Result{Kind: login.ResultConfig, Err: errors.New("backend does not support STARTTLS")})
		}
		if _, err := nc.Write([]byte("S STARTTLS\r\n")); err != nil {
			return fail(login.Unavailable("STARTTLS: %w", err))
		}
		if line, _, err := untilTagged(br, "S "); err != nil || !strings.HasPrefix(line, "S OK") {
			return fail(login.Unavailable("STARTTLS refused: %q %v", line, err))
		}
		tc, err := login.ClientTLS(nc, tlsConf, dest)
		if err != nil {
			return fail(login.Unavailable("STARTTLS handshake: %w", err))
		}
		nc, br, caps = tc, relay.NewReader(tc), capSet{}
	}
	if !caps.known {
		if _, err := nc.Write([]byte("C CAPABILITY\r\n")); err != nil {
			return fail(login.Unavailable("CAPABILITY: %w", err))
		}
		line, untagged, err := untilTagged(br, "C ")
		if err != nil || !strings.HasPrefix(line, "C OK") {
			return fail(login.Unavailable("CAPABILITY failed: %q %v", line, err))
		}
		caps = capSet{known: true}
		for _, u := range untagged {
			if rest, ok := cutPrefixFold(u, "* CAPABILITY "); ok {
				caps.words += " " + rest
			}
		}
	}
	return nc, br, caps, login.Result{Kind: login.ResultOK}
}

// loginReply maps the backend's tagged answer to the login (reference 6.2).
func (c *conn) loginReply(nc net.Conn, br *bufio.Reader, tag, reply, postCaps string) (*login.Session, login.Result) {
	word, rest, _ := strings.Cut(reply, " ")
	switch strings.ToUpper(word) {
	case "OK":
		caps, text := postCaps, rest
		if codeCaps, after, ok := capabilityText(rest); ok {
			caps = strings.TrimSpace(codeCaps)
			text = strings.TrimPrefix(after, " ")
		}
		_ = nc.SetDeadline(time.Time{})
		return &login.Session{Conn: nc, BR: br, OK: c.loggedInReply(tag, caps, text)}, login.Result{Kind: login.ResultOK}
	case "NO":
		if _, ok := cutPrefixFold(rest, "[UNAVAILABLE]"); ok {
			// retried like a connect failure, passed on once the reconnects are spent
			return nil, login.Result{Kind: login.ResultUnavailable, Text: "NO " + rest, Err: fmt.Errorf("backend: %q", reply)}
		}
		if strings.HasPrefix(rest, "[") && !strings.HasPrefix(strings.ToUpper(rest), "[AUTHENTICATIONFAILED]") {
			return nil, login.Result{Kind: login.ResultForward, Text: "NO " + rest}
		}
	}
	return nil, login.Result{Kind: login.ResultAuthFailed}
}

// capabilityText finds a leading "[CAPABILITY ...]" code; after is the text behind "]".
func capabilityText(s string) (caps, after string, ok bool) {
	rest, ok := cutPrefixFold(s, "[CAPABILITY ")
	if !ok {
		return "", "", false
	}
	caps, after, ok = strings.Cut(rest, "]")
	return caps, after, ok
}

// capSet is a backend's capabilities as it listed them. A login looks up a handful, so
// scanning the words costs less than building a set.
type capSet struct {
	words string
	known bool // the backend listed them (an empty list is a list)
}

// has reports whether the backend listed name (case-insensitive, as IMAP atoms are).
func (c capSet) has(name string) bool {
	for w := range strings.FieldsSeq(c.words) {
		if strings.EqualFold(w, name) {
			return true
		}
	}
	return false
}

// capabilityCode reads a leading [CAPABILITY ...] code; known is false when there is none.
func capabilityCode(s string) (capSet, bool) {
	caps, _, ok := capabilityText(s)
	return capSet{words: caps, known: ok}, ok
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// untilTagged reads lines until one starting with tag, returning it and the untagged ones.
func untilTagged(br *bufio.Reader, tag string) (string, []string, error) {
	var untagged []string
	for {
		line, err := backendLine(br)
		if err != nil {
			return "", untagged, err
		}
		if strings.HasPrefix(line, tag) {
			return line, untagged, nil
		}
		if len(untagged) < 100 {
			untagged = append(untagged, line)
		}
	}
}

// appendID appends the ID command that forwards who the client really is, with the client's
// own ID parameters first (imap_id_retain) and the forward fields as x-forward-<key> last, as
// Dovecot's proxy does; the backend trusts it if it trusts us.
func (c *conn) appendID(b []byte, forward []string) []byte {
	b = append(b, "I ID ("...)
	if c.clientID != "" {
		b = append(b, c.clientID...)
		b = append(b, ' ')
	}
	kv := []string{
		"x-session-id", c.SessionID,
		"x-originating-ip", c.Remote.Addr().String(),
		"x-originating-port", strconv.Itoa(int(c.Remote.Port())),
		"x-connected-ip", c.Local.Addr().String(),
		"x-connected-port", strconv.Itoa(int(c.Local.Port())),
		"x-proxy-ttl", strconv.Itoa(c.TTL - 1),
	}
	for _, f := range forward {
		k, v, _ := strings.Cut(f, "=")
		if quotable(k) && quotable(v) {
			kv = append(kv, "x-forward-"+k, v)
		}
	}
	for i, s := range kv {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, quote(s)...)
	}
	return append(b, ")\r\n"...)
}

// loginChunks renders the login command: LOGIN, or AUTHENTICATE PLAIN when the backend
// disables LOGIN, for a master user (Authz) or when sasl says so. Every chunk after the first
// is sent only after the backend's "+" continuation (synchronizing literal, or AUTHENTICATE
// without SASL-IR).
func loginChunks(cr login.Creds, caps capSet, sasl bool) ([]string, *login.Result) {
	if !caps.has("LOGINDISABLED") && cr.Authz == "" && !sasl {
		var b chunkBuilder
		b.literalPlus = caps.has("LITERAL+")
		b.cur.WriteString("L LOGIN ")
		b.astring(cr.User)
		b.cur.WriteByte(' ')
		b.astring(cr.Pass)
		return b.end(), nil
	}
	if !caps.has("AUTH=PLAIN") {
		return nil, &login.Result{Kind: login.ResultConfig, Err: errors.New("backend has LOGINDISABLED and no AUTH=PLAIN")}
	}
	ir := base64.StdEncoding.EncodeToString([]byte(cr.Authz + "\x00" + cr.User + "\x00" + cr.Pass))
	if ir == "" {
		ir = "="
	}
	if caps.has("SASL-IR") {
		return []string{"L AUTHENTICATE PLAIN " + ir + "\r\n"}, nil
	}
	return []string{"L AUTHENTICATE PLAIN\r\n", ir + "\r\n"}, nil
}

type chunkBuilder struct {
	chunks      []string
	cur         strings.Builder
	literalPlus bool
}

// astring writes s quoted when IMAP allows it, else as a literal.
func (b *chunkBuilder) astring(s string) {
	if quotable(s) {
		b.cur.WriteString(quote(s))
		return
	}
	if b.literalPlus {
		fmt.Fprintf(&b.cur, "{%d+}\r\n%s", len(s), s)
		return
	}
	fmt.Fprintf(&b.cur, "{%d}\r\n", len(s))
	b.chunks = append(b.chunks, b.cur.String())
	b.cur.Reset()
	b.cur.WriteString(s)
}

func (b *chunkBuilder) end() []string {
	b.cur.WriteString("\r\n")
	return append(b.chunks, b.cur.String())
}

// quotable: a quoted string may not hold CR, LF, NUL or 8-bit bytes (RFC 3501 QUOTED-CHAR).
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || c >= 0x80 {
			return false
		}
	}
	return true
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func quote(s string) string {
	return `"` + quoteEscaper.Replace(s) + `"`
}
