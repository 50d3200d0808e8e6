package devbackend

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
)

// memConn is a net.Conn over fixed input that records what is written.
type memConn struct {
	net.Conn
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error) { return c.out.Write(p) }

// FuzzIDConn checks that the ID shim never loses or invents client bytes:
// what reaches the IMAP server is the input minus the ID lines it answered.
func FuzzIDConn(f *testing.F) {
	f.Add([]byte("a ID NIL\r\nb LOGIN x y\r\nc ID NIL\r\n"))
	f.Add([]byte("a id (\"k\" {3}\r\nabc)\r\n"))
	f.Add([]byte("x CAPABILITY\r\ny ID (\"a\" \"b\")\r\nz AUTHENTICATE PLAIN\r\nAGFAYg==\r\n"))
	f.Add(bytes.Repeat([]byte("A"), 10000))
	f.Fuzz(func(t *testing.T, input []byte) {
		mc := &memConn{in: bytes.NewReader(input)}
		c := newIDConn(mc, "b1", slog.New(slog.NewTextHandler(io.Discard, nil)))
		passed, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		answered := bytes.Count(mc.out.Bytes(), []byte(" OK ID completed.\r\n"))
		removed := len(input) - len(passed)
		if removed < 0 || (answered == 0) != (removed == 0) {
			t.Fatalf("input %q passed %q answered %d", input, passed, answered)
		}
		// The passed bytes are the input with whole lines taken out.
		i := 0
		for _, line := range bytes.SplitAfter(input, []byte("\n")) {
			if i < len(passed) && bytes.HasPrefix(passed[i:], line) {
				i += len(line)
			}
		}
		if i != len(passed) {
			t.Fatalf("passed bytes are not whole input lines: input %q passed %q", input, passed)
		}
	})
}
