package imap

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

// relayDialogue logs in on a backend with a relayed SASL exchange (login/saslrelay.go):
// banner, STARTTLS and ID as for LOGIN, then AUTHENTICATE with the client's first message
// (as SASL-IR when the backend takes it), each "+" challenge to the client and its answer
// back, until the tagged answer, which is mapped like LOGIN's.
func (c *conn) relayDialogue(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort, tag string, x *login.Exchange) (*login.Session, login.Result) {
	tg := login.TargetOf(ctx)
	nc, br, caps, res := c.backendHello(tg, nc, br, dest)
	if res.Kind != login.ResultOK {
		return nil, res
	}
	c.s.mechs.Learn(dest.Addr(), caps.mechanisms())
	if !caps.has("AUTH=" + x.Mech) {
		return nil, login.Result{Kind: login.ResultForward, Text: noMechanism}
	}
	b, stop := c.idFirst(ctx, tg, nc, br, caps, 256+len(x.First)*4/3)
	if stop != nil {
		return nil, *stop
	}
	ir := base64.StdEncoding.EncodeToString(x.First)
	if ir == "" {
		ir = "=" // RFC 4959: an empty initial response
	}
	b = append(b, "L AUTHENTICATE "+x.Mech...)
	pendingIR := true
	if caps.has("SASL-IR") {
		b = append(b, " "+ir...)
		pendingIR = false
	}
	if _, err := nc.Write(append(b, "\r\n"...)); err != nil {
		return nil, x.Unavailable("sending AUTHENTICATE: %w", err)
	}
	var postCaps string
	for {
		line, err := backendLine(br)
		if err != nil {
			return nil, x.Unavailable("reading AUTHENTICATE reply: %w", err)
		}
		switch {
		case line == "+" || strings.HasPrefix(line, "+ "):
			var answer string
			if pendingIR {
				answer, pendingIR = ir, false
			} else {
				var stop *login.Result
				if answer, stop = x.Challenge(strings.TrimPrefix(strings.TrimPrefix(line, "+"), " ")); stop != nil {
					return nil, *stop
				}
			}
			if _, err := nc.Write([]byte(answer + "\r\n")); err != nil {
				return nil, x.Unavailable("sending a response: %w", err)
			}
		case strings.HasPrefix(line, "L "):
			return c.loginReply(nc, br, tag, line[2:], postCaps)
		default:
			if rest, ok := cutPrefixFold(line, "* CAPABILITY "); ok {
				postCaps = rest
			}
		}
	}
}

// mechanisms are the SASL mechanisms of the backend's AUTH= capabilities.
func (cs capSet) mechanisms() []string {
	var out []string
	for w := range strings.FieldsSeq(cs.words) {
		if m, ok := cutPrefixFold(w, "AUTH="); ok {
			out = append(out, strings.ToUpper(m))
		}
	}
	return out
}

// probeMechanisms asks backend's IMAP server for its mechanisms: its greeting's capabilities,
// or CAPABILITY's (after STARTTLS when backend_ssl says so), then LOGOUT.
func (s *Server) probeMechanisms(ctx context.Context, backend netip.Addr) ([]string, error) {
	return s.cfg.ProbeBackend(ctx, backend, func(nc net.Conn, br *bufio.Reader) ([]string, error) {
		nc, _, caps, res := (&conn{s: s}).backendHello(nil, nc, br, netip.AddrPortFrom(backend, uint16(s.cfg.BackendPort)))
		if res.Kind != login.ResultOK {
			return nil, fmt.Errorf("probe: %v", res.Err)
		}
		_, _ = nc.Write([]byte("Z LOGOUT\r\n"))
		return caps.mechanisms(), nil
	})
}
