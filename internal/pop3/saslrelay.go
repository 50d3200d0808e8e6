package pop3

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

// relayDialogue logs in on a backend with a relayed SASL exchange (login/saslrelay.go):
// banner, STLS and XCLIENT as for USER/PASS, then AUTH with the client's first message as
// initial response (RFC 5034), each "+" challenge to the client and its answer back, until
// the backend's +OK or -ERR, which is mapped like PASS's.
func (c *conn) relayDialogue(ctx context.Context, nc net.Conn, br *bufio.Reader, dest netip.AddrPort, x *login.Exchange) (*login.Session, login.Result) {
	nc, br, res := c.backendHello(ctx, nc, br, dest)
	if res.Kind != login.ResultOK {
		return nil, res
	}
	ir := base64.StdEncoding.EncodeToString(x.First)
	if ir == "" {
		ir = "=" // RFC 5034: an empty initial response
	}
	line := "AUTH " + x.Mech + " " + ir
	for {
		reply, err := askLine(nc, br, line)
		if err != nil {
			return nil, x.Unavailable("AUTH: %w", err)
		}
		if reply != "+" && !strings.HasPrefix(reply, "+ ") {
			if strings.HasPrefix(reply, "-ERR [AUTH] Unsupported authentication mechanism") {
				c.s.mechs.Learn(dest.Addr(), nil) // told so: ask it again on the next probe
			}
			return loginReply(nc, br, dest, reply)
		}
		var stop *login.Result
		if line, stop = x.Challenge(strings.TrimPrefix(strings.TrimPrefix(reply, "+"), " ")); stop != nil {
			return nil, *stop
		}
	}
}

// probeMechanisms asks backend's POP3 server for its mechanisms: CAPA's SASL line (after
// STLS when backend_ssl says so), then QUIT.
func (s *Server) probeMechanisms(ctx context.Context, backend netip.Addr) ([]string, error) {
	return s.cfg.ProbeBackend(ctx, backend, func(nc net.Conn, br *bufio.Reader) ([]string, error) {
		nc, br, res := (&conn{s: s}).backendHello(ctx, nc, br, netip.AddrPortFrom(backend, uint16(s.cfg.BackendPort)))
		if res.Kind != login.ResultOK {
			return nil, fmt.Errorf("probe: %v", res.Err)
		}
		mechs, err := capaSASL(nc, br)
		_, _ = nc.Write([]byte("QUIT\r\n"))
		return mechs, err
	})
}

// capaSASL sends CAPA and returns the mechanisms of its SASL line (none without one).
func capaSASL(nc net.Conn, br *bufio.Reader) ([]string, error) {
	line, err := askLine(nc, br, "CAPA")
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "+OK") {
		return nil, errors.New("CAPA refused: " + line)
	}
	mechs := []string{}
	for range 100 {
		line, err := readLine(br, maxBackendLine)
		if err != nil {
			return nil, err
		}
		if line == "." {
			return mechs, nil
		}
		if rest, ok := strings.CutPrefix(strings.ToUpper(line), "SASL "); ok {
			mechs = strings.Fields(rest)
		}
	}
	return nil, errors.New("CAPA too long")
}
