package devbackend

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
)

// go-imap v2.0.0-beta.8's server does not implement the ID command (RFC
// 2971), and it closes the connection on any unknown command before login.
// usher sends ID (with x-originating-ip and friends) to backends that
// advertise it, so the demo backend answers ID itself in front of the
// library: idConn reads command lines before login, answers ID lines and
// passes everything else through, and adds ID to the capabilities the
// server announces meanwhile. Once a LOGIN or AUTHENTICATE line has gone
// through it gets out of the way.

// maxPreLoginLine bounds the lines idConn inspects; longer ones are passed
// through untouched and end the inspection.
const maxPreLoginLine = 8192

type idConn struct {
	net.Conn
	backend string
	log     *slog.Logger

	br       *bufio.Reader
	preLogin atomic.Bool // also read by Write
	pending  []byte      // the rest of a line being passed through
}

func newIDConn(c net.Conn, backend string, log *slog.Logger) *idConn {
	ic := &idConn{Conn: c, backend: backend, log: log, br: bufio.NewReaderSize(c, maxPreLoginLine)}
	ic.preLogin.Store(true)
	return ic
}

func (c *idConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 && c.preLogin.Load() {
		line, err := c.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			c.preLogin.Store(false)
			c.pending = append([]byte(nil), line...)
			break
		}
		if err != nil {
			if len(line) > 0 {
				c.pending = append([]byte(nil), line...)
				break
			}
			return 0, err
		}
		tag, cmd, args := splitCommand(line)
		switch {
		case cmd == "ID" && !endsWithLiteral(line):
			if err := c.answerID(tag, args); err != nil {
				return 0, err
			}
			continue
		case cmd == "LOGIN" || cmd == "AUTHENTICATE" || cmd == "STARTTLS" || cmd == "ID":
			c.preLogin.Store(false)
		}
		c.pending = append([]byte(nil), line...)
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.br.Read(p)
}

// Before login the server writes only from the goroutine that is inside
// Read while idConn answers, so the two never interleave.
func (c *idConn) answerID(tag, args []byte) error {
	c.log.Debug("ID from client", "backend", c.backend, "params", string(bytes.TrimSpace(args)))
	resp := fmt.Sprintf("* ID (\"name\" \"usher-devbackend\" \"backend\" %s)\r\n%s OK ID completed.\r\n",
		strconv.Quote(c.backend), tag)
	_, err := c.Conn.Write([]byte(resp))
	return err
}

var (
	capsRev1   = []byte("CAPABILITY IMAP4rev1")
	capsRev1ID = []byte("CAPABILITY IMAP4rev1 ID")
)

// Write adds ID to the greeting's and CAPABILITY's capability lists while
// idConn still answers ID.
func (c *idConn) Write(p []byte) (int, error) {
	if !c.preLogin.Load() || !bytes.Contains(p, capsRev1) {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(bytes.Replace(p, capsRev1, capsRev1ID, -1)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// splitCommand returns the tag, the upper-cased command name and the rest
// of an IMAP command line.
func splitCommand(line []byte) (tag []byte, cmd string, args []byte) {
	line = bytes.TrimRight(line, "\r\n")
	tag, rest, _ := bytes.Cut(line, []byte(" "))
	name, args, _ := bytes.Cut(rest, []byte(" "))
	return tag, string(bytes.ToUpper(name)), args
}

// endsWithLiteral reports whether a line announces a literal ({n} or {n+}),
// whose data idConn would otherwise mistake for commands.
func endsWithLiteral(line []byte) bool {
	line = bytes.TrimRight(line, "\r\n")
	return bytes.HasSuffix(line, []byte("}"))
}

// idListener wraps accepted connections in idConn.
type idListener struct {
	net.Listener
	backend string
	log     *slog.Logger
}

func (l idListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newIDConn(c, l.backend, l.log), nil
}
