package sieve

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

// relayDialogue logs in on a backend with a relayed SASL exchange (login/saslrelay.go):
// greeting, STARTTLS and XCLIENT as for PLAIN, then AUTHENTICATE with the client's first
// message as initial response, each challenge string to the client and its answer back, until
// the backend's OK (passed on whole: with SCRAM it carries the server's last message as
// (SASL "...")), NO or BYE, mapped like PLAIN's.
func (c *conn) relayDialogue(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort, x *login.Exchange) (*login.Session, login.Result) {
	nc, br, caps, res := c.backendHello(ctx, nc, br, dest)
	if res.Kind != login.ResultOK {
		return nil, res
	}
	c.s.mechs.Learn(dest.Addr(), strings.Fields(caps["SASL"]))
	if !hasField(caps["SASL"], x.Mech) {
		return nil, login.Result{Kind: login.ResultForward, Text: noMechanism}
	}
	line := `AUTHENTICATE "` + x.Mech + `" "` + base64.StdEncoding.EncodeToString(x.First) + `"`
	for {
		reply, err := askLine(nc, br, line)
		if err != nil {
			return nil, x.Unavailable("AUTHENTICATE: %w", err)
		}
		text, isString, err := serverString(br, reply)
		if err != nil {
			return nil, x.Unavailable("backend challenge: %w", err)
		}
		if !isString {
			if strings.HasPrefix(reply, "BYE") {
				return nil, x.Unavailable("backend said %q", reply)
			}
			return loginReply(nc, reply, br)
		}
		answer, stop := x.Challenge(text)
		if stop != nil {
			return nil, *stop
		}
		line = `"` + answer + `"`
	}
}

// serverString reads a challenge: a quoted string on its line, or a literal {n} whose bytes
// follow. isString is false for any other line (the final answer).
func serverString(br *bufio.Reader, line string) (s string, isString bool, err error) {
	switch {
	case strings.HasPrefix(line, `"`):
		s, next, ok := quoted(line, 0)
		if !ok || next != len(line) {
			return "", true, fmt.Errorf("bad string %q", clip(line))
		}
		return s, true, nil
	case strings.HasPrefix(line, "{") && strings.HasSuffix(line, "}"):
		n, err := strconv.Atoi(strings.TrimSuffix(line[1:len(line)-1], "+"))
		if err != nil || n < 0 || n > maxBackendLine {
			return "", true, fmt.Errorf("bad literal %q", clip(line))
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", true, err
		}
		if rest, err := backendLine(br); err != nil || rest != "" {
			return "", true, fmt.Errorf("literal not ended by its line: %q %v", clip(rest), err)
		}
		return string(b), true, nil
	}
	return "", false, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// hasField reports whether the space-separated list holds word (case-insensitive).
func hasField(list, word string) bool {
	for w := range strings.FieldsSeq(list) {
		if strings.EqualFold(w, word) {
			return true
		}
	}
	return false
}

// probeMechanisms asks backend's ManageSieve server for its mechanisms: the greeting's SASL
// capability (the one after STARTTLS when backend_ssl says so), then LOGOUT.
func (s *Server) probeMechanisms(ctx context.Context, backend netip.Addr) ([]string, error) {
	return s.cfg.ProbeBackend(ctx, backend, func(nc net.Conn, br *bufio.Reader) ([]string, error) {
		nc, _, caps, res := (&conn{s: s}).backendHello(ctx, nc, br, netip.AddrPortFrom(backend, uint16(s.cfg.BackendPort)))
		if res.Kind != login.ResultOK {
			return nil, fmt.Errorf("probe: %v", res.Err)
		}
		_, _ = nc.Write([]byte("LOGOUT\r\n"))
		return strings.Fields(caps["SASL"]), nil
	})
}
