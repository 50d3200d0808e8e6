package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// fakeCaps is what the fake backend announces. SASL-IR and ID make Dovecot's and usher's
// proxies take their usual pipelined path; LITERAL+ lets them send literals without a round trip.
const fakeCaps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"

// fakeBackend is a tiny IMAP server every contender shares. It is cheap enough that 50,000 idle
// sessions cost the harness little, and it serves one fixed mailbox of large messages from one
// shared buffer so bulk transfers measure the proxy, not a mail store.
type fakeBackend struct {
	log      *slog.Logger
	password string
	tls      *tls.Config
	msgs     int
	body     []byte // every message's content, "X-Bench: n" headers then filler

	lns  []net.Listener
	mu   sync.Mutex
	conn map[net.Conn]struct{}
	wg   sync.WaitGroup
}

// startFakeBackends listens on port on every ip (port 0: one free port shared by all ips).
func startFakeBackends(log *slog.Logger, ips []netip.Addr, password string, tc *tls.Config, msgs, msgSize int) (*fakeBackend, int, error) {
	fb := &fakeBackend{log: log, password: password, tls: tc, msgs: msgs, body: messageBody(msgSize), conn: map[net.Conn]struct{}{}}
	for attempt := 0; attempt < 20; attempt++ {
		port, err := fb.listenAll(ips)
		if err == nil {
			return fb, port, nil
		}
		fb.closeListeners()
	}
	return nil, 0, errors.New("fake backend: no port free on all addresses")
}

func (fb *fakeBackend) listenAll(ips []netip.Addr) (int, error) {
	port := 0
	fb.lns = nil
	for _, ip := range ips {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		if err != nil {
			return 0, err
		}
		fb.lns = append(fb.lns, ln)
		port = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range fb.lns {
		fb.wg.Add(1)
		go fb.accept(ln)
	}
	return port, nil
}

func (fb *fakeBackend) closeListeners() {
	for _, ln := range fb.lns {
		ln.Close()
	}
}

// Close stops listening and drops every session.
func (fb *fakeBackend) Close() {
	fb.closeListeners()
	fb.mu.Lock()
	for c := range fb.conn {
		c.Close()
	}
	fb.mu.Unlock()
	fb.wg.Wait()
}

func (fb *fakeBackend) accept(ln net.Listener) {
	defer fb.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		fb.mu.Lock()
		fb.conn[c] = struct{}{}
		fb.mu.Unlock()
		fb.wg.Add(1)
		go func() {
			defer fb.wg.Done()
			fb.serve(c)
			fb.mu.Lock()
			delete(fb.conn, c)
			fb.mu.Unlock()
			c.Close()
		}()
	}
}

func messageBody(size int) []byte {
	if size < 64 {
		size = 64
	}
	b := make([]byte, size)
	hdr := "From: bench@usher.test\r\nSubject: bulk\r\n\r\n"
	copy(b, hdr)
	for i := len(hdr); i < size; i++ {
		b[i] = 'a' + byte(i%26)
		if i%78 == 76 {
			b[i] = '\r'
		} else if i%78 == 77 {
			b[i] = '\n'
		}
	}
	return b
}

// session is one backend connection. A small reader keeps an idle session cheap.
type session struct {
	fb       *fakeBackend
	c        net.Conn
	r        *bufio.Reader
	loggedIn bool
}

func (fb *fakeBackend) serve(c net.Conn) {
	s := &session{fb: fb, c: c, r: bufio.NewReaderSize(c, 512)}
	if _, err := io.WriteString(c, "* OK [CAPABILITY "+fakeCaps+" STARTTLS] fake backend ready.\r\n"); err != nil {
		return
	}
	for {
		line, err := s.readCommand()
		if err != nil {
			return
		}
		if done := s.handle(line); done {
			return
		}
	}
}

// readCommand reads one command, inlining literals ({n} gets a continuation, {n+} does not), so
// the caller sees one string.
func (s *session) readCommand() (string, error) {
	var sb strings.Builder
	for sb.Len() < 64*1024 {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		n, plus, ok := trailingLiteral(line)
		if !ok {
			sb.WriteString(line)
			return sb.String(), nil
		}
		sb.WriteString(line[:strings.LastIndexByte(line, '{')])
		if !plus {
			if _, err := io.WriteString(s.c, "+ OK\r\n"); err != nil {
				return "", err
			}
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(s.r, buf); err != nil {
			return "", err
		}
		sb.WriteString(strconv.Quote(string(buf)))
	}
	return "", errors.New("command too long")
}

func trailingLiteral(line string) (n int, plus, ok bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, false
	}
	num := line[i+1 : len(line)-1]
	if strings.HasSuffix(num, "+") {
		plus, num = true, num[:len(num)-1]
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 8192 {
		return 0, false, false
	}
	return n, plus, true
}

// handle answers one command; done means the connection ends.
func (s *session) handle(line string) (done bool) {
	tag, rest, _ := strings.Cut(line, " ")
	cmd, args, _ := strings.Cut(rest, " ")
	var out string
	switch strings.ToUpper(cmd) {
	case "CAPABILITY":
		out = "* CAPABILITY " + fakeCaps + "\r\n" + tag + " OK Capability completed.\r\n"
	case "ID":
		out = "* ID NIL\r\n" + tag + " OK ID completed.\r\n"
	case "NOOP":
		out = tag + " OK NOOP completed.\r\n"
	case "STARTTLS":
		return s.startTLS(tag)
	case "LOGIN":
		f := fields(args)
		out = s.login(tag, len(f) == 2 && f[1] == s.fb.password)
	case "AUTHENTICATE":
		ok, err := s.authenticate(args)
		if err != nil {
			return true
		}
		out = s.login(tag, ok)
	case "SELECT", "EXAMINE":
		if !s.loggedIn {
			out = tag + " BAD Not logged in.\r\n"
			break
		}
		out = fmt.Sprintf("* FLAGS (\\Seen)\r\n* %d EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1] UIDs valid\r\n* OK [UIDNEXT %d] next\r\n%s OK [READ-WRITE] Select completed.\r\n", s.fb.msgs, s.fb.msgs+1, tag)
	case "FETCH", "UID":
		if !s.loggedIn {
			out = tag + " BAD Not logged in.\r\n"
			break
		}
		return s.fetchAll(tag) != nil
	case "LOGOUT":
		io.WriteString(s.c, "* BYE Logging out\r\n"+tag+" OK Logout completed.\r\n")
		return true
	default:
		out = tag + " BAD Error in IMAP command.\r\n"
	}
	_, err := io.WriteString(s.c, out)
	return err != nil
}

func (s *session) login(tag string, ok bool) string {
	if !ok {
		return tag + " NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
	}
	s.loggedIn = true
	return tag + " OK [CAPABILITY " + fakeCaps + "] Logged in\r\n"
}

func (s *session) authenticate(args string) (bool, error) {
	mech, ir, _ := strings.Cut(args, " ")
	if !strings.EqualFold(mech, "PLAIN") {
		return false, nil
	}
	if ir == "" {
		if _, err := io.WriteString(s.c, "+ \r\n"); err != nil {
			return false, err
		}
		l, err := s.r.ReadString('\n')
		if err != nil {
			return false, err
		}
		ir = strings.TrimRight(l, "\r\n")
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	if err != nil {
		return false, nil
	}
	parts := strings.Split(string(raw), "\x00")
	return len(parts) == 3 && parts[2] == s.fb.password, nil
}

func (s *session) startTLS(tag string) bool {
	if s.fb.tls == nil || s.loggedIn {
		_, err := io.WriteString(s.c, tag+" BAD STARTTLS not available.\r\n")
		return err != nil
	}
	if _, err := io.WriteString(s.c, tag+" OK Begin TLS negotiation now.\r\n"); err != nil {
		return true
	}
	tc := tls.Server(s.c, s.fb.tls)
	if err := tc.Handshake(); err != nil {
		return true
	}
	s.c, s.r = tc, bufio.NewReaderSize(tc, 512)
	return false
}

// fetchAll sends every message of the mailbox whatever the FETCH asked for: the bulk load only
// ever asks for 1:* BODY[].
func (s *session) fetchAll(tag string) error {
	w := bufio.NewWriterSize(s.c, 64*1024)
	for i := 1; i <= s.fb.msgs; i++ {
		fmt.Fprintf(w, "* %d FETCH (BODY[] {%d}\r\n", i, len(s.fb.body))
		if _, err := w.Write(s.fb.body); err != nil {
			return err
		}
		w.WriteString(")\r\n")
	}
	w.WriteString(tag + " OK Fetch completed.\r\n")
	return w.Flush()
}

// fields splits IMAP astrings: atoms and Go-quoted strings (literals were inlined as such).
func fields(s string) []string {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return out
			}
			v, _ := strconv.Unquote(q)
			out = append(out, v)
			s = s[len(q):]
			continue
		}
		a, rest, _ := strings.Cut(s, " ")
		out = append(out, a)
		s = rest
	}
	return out
}
