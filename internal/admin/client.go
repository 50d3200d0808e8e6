package admin

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/tabescape"
)

// Bounds on what a director may send a client: a site maps millions of
// users, but a row is short and a listing ends.
const (
	maxReplyLine = 4096
	maxRows      = 50_000_000
)

// Client speaks the director-admin protocol (doveadm's side) to a Dovecot
// 2.3 director or to usher, one command at a time: `usher import` and the
// status page use it.
type Client struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// Dial connects to addr: a unix socket path (anything with a '/') or
// host:port, and does the handshake.
func Dial(addr string, timeout time.Duration) (*Client, error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
	}
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return NewClient(conn, timeout)
}

// NewClient does the handshake on conn (e.g. Server.Pipe) and returns a
// client that owns it.
func NewClient(conn net.Conn, timeout time.Duration) (*Client, error) {
	addr := conn.RemoteAddr().String()
	c := &Client{conn: conn, r: bufio.NewReaderSize(conn, maxReplyLine), timeout: timeout}
	// The server speaks first (Dovecot's director and usher both greet on
	// connect); on a synchronous pipe, writing first would wait for ever.
	greet, err := c.readLine()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: no handshake: %w", addr, err)
	}
	if f := tabescape.Split(greet); len(f) < 3 || f[0] != "VERSION" || f[1] != "director-doveadm" || f[2] != "1" {
		conn.Close()
		return nil, fmt.Errorf("%s: not a director-admin socket (handshake %q)", addr, trunc(greet))
	}
	if _, err := c.send("VERSION", "director-doveadm", "1", "0"); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) send(fields ...string) (int, error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	return c.conn.Write([]byte(tabescape.Join(fields...) + "\n"))
}

// Cmd sends a command with a one-line reply.
func (c *Client) Cmd(fields ...string) (string, error) {
	if _, err := c.send(fields...); err != nil {
		return "", err
	}
	return c.readLine()
}

// List sends a command whose reply is rows ended by an empty line, and
// calls row for each, split into fields.
func (c *Client) List(row func([]string) error, fields ...string) error {
	if _, err := c.send(fields...); err != nil {
		return err
	}
	for n := 0; ; n++ {
		if n > maxRows {
			return fmt.Errorf("%s: more than %d rows", fields[0], maxRows)
		}
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if line == "" {
			return nil
		}
		if err := row(tabescape.Split(line)); err != nil {
			return err
		}
	}
}

var errLong = errors.New("reply line too long")

func (c *Client) readLine() (string, error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errLong
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"), nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
