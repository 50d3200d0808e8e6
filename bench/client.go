package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// imapClient is the load generator's raw IMAP client: no parsing beyond tags and literals, so
// the harness spends as little CPU per login as possible.
type imapClient struct {
	c net.Conn
	r *bufio.Reader
	n int // bytes of literal data read, for bulk
}

// target is where a contender accepts IMAP clients.
type target struct {
	addr    netip.AddrPort
	srcIPs  []netip.Addr // client source addresses, spread so 50,000 sessions find ports
	timeout time.Duration
}

// dial connects (from src when valid) and reads the greeting.
func dial(t target, src netip.Addr) (*imapClient, error) {
	d := net.Dialer{Timeout: t.timeout}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	c, err := d.Dial("tcp", t.addr.String())
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(t.timeout))
	cl := &imapClient{c: c, r: bufio.NewReaderSize(c, 1024)}
	line, err := cl.r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !strings.HasPrefix(line, "* OK") {
		c.Close()
		return nil, fmt.Errorf("greeting: %q", line)
	}
	return cl, nil
}

// cmd sends one command and reads to its tagged reply, which must be OK.
func (cl *imapClient) cmd(tag, text string) error {
	if _, err := io.WriteString(cl.c, tag+" "+text+"\r\n"); err != nil {
		return err
	}
	return cl.waitTagged(tag)
}

func (cl *imapClient) waitTagged(tag string) error {
	prefix := tag + " "
	for {
		line, err := cl.r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("%s: %w", tag, err)
		}
		if n, ok := literalSize(line); ok {
			m, err := io.CopyN(io.Discard, cl.r, n)
			cl.n += int(m)
			if err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(line, prefix) {
			if strings.HasPrefix(line[len(prefix):], "OK") {
				return nil
			}
			return fmt.Errorf("%s: %s", tag, strings.TrimSpace(line))
		}
	}
}

func literalSize(line string) (int64, bool) {
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(line[i+1:len(line)-1], 10, 64)
	return n, err == nil && n >= 0
}

// startTLS upgrades the connection; certificates are the harness's own, not verified.
func (cl *imapClient) startTLS() error {
	if err := cl.cmd("s", "STARTTLS"); err != nil {
		return err
	}
	if cl.r.Buffered() > 0 {
		return errors.New("data after STARTTLS reply")
	}
	tc := tls.Client(cl.c, &tls.Config{InsecureSkipVerify: true, ServerName: "bench.usher.test"})
	if err := tc.Handshake(); err != nil {
		return err
	}
	cl.c, cl.r = tc, bufio.NewReaderSize(tc, 1024)
	return nil
}

func (cl *imapClient) login(user, pass string) error {
	return cl.cmd("a", "LOGIN "+user+" "+pass)
}

// logout ends the session politely; the server closes first, so TIME_WAIT stays server-side.
func (cl *imapClient) logout() {
	io.WriteString(cl.c, "z LOGOUT\r\n")
	cl.waitTagged("z")
	cl.c.Close()
}

func (cl *imapClient) close() { cl.c.Close() }

// keepAlive lifts the deadline of a session that is to be held idle.
func (cl *imapClient) keepAlive() { cl.c.SetDeadline(time.Time{}) }
