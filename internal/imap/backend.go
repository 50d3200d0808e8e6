package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

type resultKind int

const (
	resultUnavailable resultKind = iota // connect, remote or protocol failure
	resultOK
	resultAuthFailed
	resultForward // a NO with a response code, passed on verbatim
	resultConfig  // the backend cannot be used as configured (SERVERBUG)
)

type result struct {
	kind resultKind
	text string // resultForward: the reply after the tag
	err  error
}

func unavailable(format string, a ...any) result {
	return result{kind: resultUnavailable, err: fmt.Errorf(format, a...)}
}

// backendSession is a backend connection on which the client's user is logged in.
type backendSession struct {
	conn   net.Conn
	br     *bufio.Reader // may hold bytes the backend sent after its OK
	addr   netip.AddrPort
	user   string
	tag    string // of the client's login command
	caps   string // post-login capabilities, "" when unknown
	okText string // the backend's OK text after any [CAPABILITY] code
}

func addrPortOf(ip netip.Addr, port int) netip.AddrPort {
	return netip.AddrPortFrom(ip, uint16(port))
}

// backendLine reads one response line from the backend.
func backendLine(br *bufio.Reader) (string, error) {
	r := reader{br: br, maxCommand: 64 << 10}
	return r.readLine(r.maxCommand)
}

// loginBackend connects to dest and logs cr in the way Dovecot's imap proxy does: banner,
// optional STARTTLS, CAPABILITY when unknown, ID with the client's address, then LOGIN (or
// AUTHENTICATE PLAIN when the backend disables LOGIN).
func (c *conn) loginBackend(ctx context.Context, dest netip.AddrPort, cr creds) (*backendSession, result) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", dest.String())
	if err != nil {
		return nil, unavailable("connect: %w", err)
	}
	bs, res := c.backendDialogue(ctx, nc, dest, cr)
	if res.kind != resultOK {
		nc.Close()
		return nil, res
	}
	bs.user = cr.loginUser()
	return bs, res
}

func (c *conn) backendDialogue(ctx context.Context, nc net.Conn, dest netip.AddrPort, cr creds) (*backendSession, result) {
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	ssl := c.s.cfg.BackendSSL
	if ssl == "yes" {
		tc := tls.Client(nc, c.backendTLS(dest))
		if err := tc.Handshake(); err != nil {
			return nil, unavailable("TLS handshake: %w", err)
		}
		nc = tc
	}
	br := bufio.NewReaderSize(nc, 4096)
	banner, err := backendLine(br)
	if err != nil {
		return nil, unavailable("reading banner: %w", err)
	}
	if !strings.HasPrefix(banner, "* OK ") {
		return nil, unavailable("bad banner %q", banner)
	}
	caps, _ := capabilityCode(banner[len("* OK "):])
	if ssl == "starttls" {
		if caps != nil && !caps["STARTTLS"] {
			return nil, result{kind: resultConfig, err: errors.New("backend does not support STARTTLS")}
		}
		if _, err := nc.Write([]byte("S STARTTLS\r\n")); err != nil {
			return nil, unavailable("STARTTLS: %w", err)
		}
		if line, _, err := untilTagged(br, "S "); err != nil || !strings.HasPrefix(line, "S OK") {
			return nil, unavailable("STARTTLS refused: %q %v", line, err)
		}
		tc := tls.Client(nc, c.backendTLS(dest))
		if err := tc.Handshake(); err != nil {
			return nil, unavailable("STARTTLS handshake: %w", err)
		}
		nc, br, caps = tc, bufio.NewReaderSize(tc, 4096), nil
	}
	if caps == nil {
		if _, err := nc.Write([]byte("C CAPABILITY\r\n")); err != nil {
			return nil, unavailable("CAPABILITY: %w", err)
		}
		line, untagged, err := untilTagged(br, "C ")
		if err != nil || !strings.HasPrefix(line, "C OK") {
			return nil, unavailable("CAPABILITY failed: %q %v", line, err)
		}
		caps = map[string]bool{}
		for _, u := range untagged {
			if rest, ok := cutPrefixFold(u, "* CAPABILITY "); ok {
				for _, w := range strings.Fields(rest) {
					caps[strings.ToUpper(w)] = true
				}
			}
		}
	}

	// ID goes in front of the login, pipelined, so the backend logs the real client.
	var first strings.Builder
	if caps["ID"] {
		first.WriteString(c.idCommand())
	}
	chunks, res := loginChunks(cr, caps)
	if res != nil {
		return nil, *res
	}
	first.WriteString(chunks[0])
	chunks = chunks[1:]
	if _, err := nc.Write([]byte(first.String())); err != nil {
		return nil, unavailable("sending login: %w", err)
	}
	var postCaps string
	for {
		line, err := backendLine(br)
		if err != nil {
			return nil, unavailable("reading login reply: %w", err)
		}
		switch {
		case strings.HasPrefix(line, "+"):
			if len(chunks) == 0 {
				return nil, unavailable("unexpected continuation")
			}
			if _, err := nc.Write([]byte(chunks[0])); err != nil {
				return nil, unavailable("sending login: %w", err)
			}
			chunks = chunks[1:]
		case strings.HasPrefix(line, "L "):
			return c.loginReply(nc, br, dest, line[2:], postCaps)
		default:
			// Untagged data, BYE and the ID reply are the proxy's business, not the client's.
			if rest, ok := cutPrefixFold(line, "* CAPABILITY "); ok {
				postCaps = rest
			}
		}
	}
}

// loginReply maps the backend's tagged answer to the login (reference 6.2).
func (c *conn) loginReply(nc net.Conn, br *bufio.Reader, dest netip.AddrPort, reply, postCaps string) (*backendSession, result) {
	word, rest, _ := strings.Cut(reply, " ")
	switch strings.ToUpper(word) {
	case "OK":
		bs := &backendSession{conn: nc, br: br, addr: dest, caps: postCaps, okText: rest}
		if caps, after, ok := capabilityText(rest); ok {
			bs.caps = strings.TrimSpace(caps)
			bs.okText = strings.TrimPrefix(after, " ")
		}
		_ = nc.SetDeadline(noDeadline)
		return bs, result{kind: resultOK}
	case "NO":
		if strings.HasPrefix(rest, "[") && !strings.HasPrefix(strings.ToUpper(rest), "[AUTHENTICATIONFAILED]") {
			return nil, result{kind: resultForward, text: "NO " + rest}
		}
	}
	return nil, result{kind: resultAuthFailed}
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

// capabilityCode parses a leading [CAPABILITY ...] code into a set; nil when there is none.
func capabilityCode(s string) (map[string]bool, bool) {
	caps, _, ok := capabilityText(s)
	if !ok {
		return nil, false
	}
	set := map[string]bool{}
	for _, w := range strings.Fields(caps) {
		set[strings.ToUpper(w)] = true
	}
	return set, true
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

// idCommand forwards who the client really is; the backend trusts it if it trusts us.
func (c *conn) idCommand() string {
	kv := []string{
		"x-session-id", c.sessionID,
		"x-originating-ip", c.remote.Addr().String(),
		"x-originating-port", strconv.Itoa(int(c.remote.Port())),
		"x-connected-ip", c.local.Addr().String(),
		"x-connected-port", strconv.Itoa(int(c.local.Port())),
		"x-proxy-ttl", strconv.Itoa(c.ttl - 1),
	}
	var b strings.Builder
	b.WriteString("I ID (")
	for i, s := range kv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quote(s))
	}
	b.WriteString(")\r\n")
	return b.String()
}

// loginChunks renders the login command. Every chunk after the first is sent only after the
// backend's "+" continuation (synchronizing literal, or AUTHENTICATE without SASL-IR).
func loginChunks(cr creds, caps map[string]bool) ([]string, *result) {
	if !caps["LOGINDISABLED"] && cr.authz == "" {
		var b chunkBuilder
		b.literalPlus = caps["LITERAL+"]
		b.cur.WriteString("L LOGIN ")
		b.astring(cr.user)
		b.cur.WriteByte(' ')
		b.astring(cr.pass)
		return b.end(), nil
	}
	if !caps["AUTH=PLAIN"] {
		return nil, &result{kind: resultConfig, err: errors.New("backend has LOGINDISABLED and no AUTH=PLAIN")}
	}
	ir := base64.StdEncoding.EncodeToString([]byte(cr.authz + "\x00" + cr.user + "\x00" + cr.pass))
	if ir == "" {
		ir = "="
	}
	if caps["SASL-IR"] {
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

func (c *conn) backendTLS(dest netip.AddrPort) *tls.Config {
	cfg := &tls.Config{}
	if c.s.cfg.BackendTLS != nil {
		cfg = c.s.cfg.BackendTLS.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = dest.Addr().String()
	}
	return cfg
}
