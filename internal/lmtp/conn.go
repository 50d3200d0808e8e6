package lmtp

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/login"
)

// conn is one client connection.
type conn struct {
	s   *Server
	nc  net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	log *slog.Logger

	sessionID     string
	remote, local netip.AddrPort
	helo          string
	bad           int
	tx            *txn // nil between transactions; owned by the serve goroutine
	// spare holds backend connections kept from the previous transaction, by backend and
	// how it is reached; owned by the serve goroutine.
	spare map[backendKey]*backend

	// mu guards what Shutdown and Close look at from other goroutines.
	mu       sync.Mutex
	open     bool // a transaction is open: Shutdown lets it finish
	draining bool
	aborted  bool
	backends map[net.Conn]struct{} // live backend connections, closed by abort
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{
		s: s, nc: nc, sessionID: login.NewSessionID(),
		br:       bufio.NewReaderSize(nc, 64<<10),
		bw:       bufio.NewWriterSize(nc, 4096),
		backends: map[net.Conn]struct{}{},
		spare:    map[backendKey]*backend{},
	}
	c.remote, c.local = login.AddrPort(nc.RemoteAddr()), login.AddrPort(nc.LocalAddr())
	c.log = s.log.With("session", c.sessionID, "rip", c.remote.Addr().String())
	return c
}

// reply queues reply lines; they are flushed before the next read that would block.
func (c *conn) reply(lines ...string) {
	for _, l := range lines {
		c.bw.WriteString(l)
		c.bw.WriteString("\r\n")
	}
}

func (c *conn) flush() error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	return c.bw.Flush()
}

func (c *conn) serve() {
	defer c.finish()
	cfg := &c.s.cfg
	c.reply("220 " + cfg.Hostname + " " + cfg.Greeting)
	for {
		// PIPELINING: answers to a batch of commands go out together, when the batch is used up.
		if c.br.Buffered() == 0 && c.flush() != nil {
			return
		}
		if !c.armRead() {
			c.reply("421 4.3.2 " + cfg.Hostname + " Shutting down")
			_ = c.flush()
			return
		}
		line, err := c.readLine()
		if errors.Is(err, errLineTooLong) {
			if !c.badCommand("500 5.5.2 Line too long") {
				return
			}
			continue
		}
		if err != nil {
			c.readFailed(err)
			return
		}
		cmd, err := parseCommand(line)
		if err != nil {
			var se *syntaxError
			errors.As(err, &se)
			if !c.badCommand(se.reply) {
				return
			}
			continue
		}
		start := time.Now()
		next := c.dispatch(cmd)
		c.s.env.Stats.Command(Service, cmd.verb, time.Since(start))
		if !next {
			_ = c.flush()
			return
		}
	}
}

// armRead sets the idle deadline for the next command, unless the server is draining and no
// transaction is open: then the client is to be sent away.
func (c *conn) armRead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining && !c.open {
		return false
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	return true
}

var errLineTooLong = errors.New("line too long")

// readLine reads one command line without its line ending. An over-long line is consumed to its
// end and reported as errLineTooLong, which the caller answers without disconnecting.
func (c *conn) readLine() (string, error) {
	var long []byte
	tooLong := false
	for {
		frag, err := c.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
		if !tooLong && len(long)+len(frag) <= c.s.cfg.MaxLineLength+2 {
			long = append(long, frag...)
		} else {
			tooLong, long = true, nil
		}
		if err == nil {
			break
		}
	}
	if tooLong {
		return "", errLineTooLong
	}
	return strings.TrimRight(string(long), "\r\n"), nil
}

func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		c.mu.Lock()
		draining := c.draining
		c.mu.Unlock()
		if draining {
			c.reply("421 4.3.2 " + c.s.cfg.Hostname + " Shutting down")
		} else {
			c.reply("421 4.4.2 " + c.s.cfg.Hostname + " Disconnected client for inactivity")
		}
		_ = c.flush()
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		c.log.Debug("read failed", "err", err)
	}
}

// badCommand answers an invalid command; false when the client has used up its allowance.
func (c *conn) badCommand(text string) bool {
	c.bad++
	if c.bad >= c.s.cfg.MaxBadCommands {
		c.reply("421 4.7.0 " + c.s.cfg.Hostname + " Too many invalid commands.")
		_ = c.flush()
		return false
	}
	c.reply(text)
	return true
}

// dispatch runs one command; false ends the connection.
func (c *conn) dispatch(cmd *command) bool {
	switch cmd.verb {
	case "LHLO":
		return c.cmdLHLO(cmd.arg)
	case "MAIL":
		c.cmdMail(cmd)
	case "RCPT":
		c.cmdRcpt(cmd)
	case "DATA":
		if cmd.arg != "" {
			return c.badCommand("501 5.5.4 Invalid parameters")
		}
		return c.cmdData()
	case "BDAT":
		return c.cmdBDAT(cmd.arg)
	case "RSET":
		c.endTx()
		c.reply("250 2.0.0 OK")
	case "NOOP":
		c.reply("250 2.0.0 OK")
	case "VRFY":
		c.reply("252 2.3.3 Try RCPT instead")
	case "QUIT":
		c.endTx()
		c.reply("221 2.0.0 Bye")
		return false
	default:
		return c.badCommand(errUnknown.reply)
	}
	return true
}

// capabilities is the LHLO answer: Dovecot's list, plus SIZE when there is a limit.
func (c *conn) capabilities() []string {
	caps := []string{c.s.cfg.Hostname, "8BITMIME", "CHUNKING", "ENHANCEDSTATUSCODES", "PIPELINING"}
	if c.s.cfg.MaxMessageSize > 0 {
		caps = append(caps, "SIZE "+strconv.FormatInt(c.s.cfg.MaxMessageSize, 10))
	}
	out := make([]string, len(caps))
	for i, s := range caps {
		sep := "-"
		if i == len(caps)-1 {
			sep = " "
		}
		out[i] = "250" + sep + s
	}
	return out
}

func (c *conn) cmdLHLO(arg string) bool {
	arg = strings.TrimSpace(arg)
	if arg == "" || strings.ContainsAny(arg, " \t") {
		return c.badCommand("501 5.5.4 Invalid domain")
	}
	c.endTx()       // LHLO resets the session (RFC 5321 4.1.4)
	c.closeSpares() // they told the backends the old LHLO name
	c.helo = arg
	c.reply(c.capabilities()...)
	return true
}

// finish closes everything the connection still holds.
func (c *conn) finish() {
	c.endTx()
	c.closeSpares()
	c.nc.Close()
}

// drain asks the connection to leave as soon as no transaction is open.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if !c.open {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0)) // wakes a read blocked on the next command
	}
}

// abort cuts the client and every backend connection of its transaction.
func (c *conn) abort() {
	c.mu.Lock()
	c.aborted = true
	for b := range c.backends {
		b.Close()
	}
	c.mu.Unlock()
	c.nc.Close()
}

// track records a backend connection so abort can close it; false when already aborted.
func (c *conn) track(nc net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		return false
	}
	c.backends[nc] = struct{}{}
	return true
}

func (c *conn) untrack(nc net.Conn) {
	c.mu.Lock()
	delete(c.backends, nc)
	c.mu.Unlock()
}
