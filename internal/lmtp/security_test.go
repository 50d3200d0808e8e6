package lmtp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/netx"
)

// TestDataWithout354: a backend that answers DATA with 250 has not taken
// the message; its recipients get 451, not that 250, and it is sent no data.
func TestDataWithout354(t *testing.T) {
	r, b1, b2 := twoBackends(t, Config{})
	ok := "250 2.0.0 OK"
	b2.dataReply.Store(&ok)
	c := r.dial()
	c.send("LHLO c", "MAIL FROM:<s@x.test>", "RCPT TO:<alice@x.test>", "RCPT TO:<bob@x.test>", "RCPT TO:<dave@x.test>", "DATA")
	for _, want := range []string{"250-", "250 ", "250 ", "250 ", "250 ", "354"} {
		c.expect(want)
	}
	c.send("a: b", "", "QUIT", ".")
	c.expect("250 2.0.0 <alice@x.test>")
	c.expect("451 4.4.0 Proxy failed (bad reply, session=")
	c.expect("451 4.4.0 Proxy failed (bad reply, session=")
	if len(b1.messages("alice@x.test")) != 1 {
		t.Error("alice's copy not delivered")
	}
	for _, l := range b2.received() {
		if l == "QUIT" || l == "a: b" {
			t.Errorf("message data reached the backend that refused DATA: %q", b2.received())
		}
	}
}

// TestRecipientLimit: past MaxRecipients RCPT answers 452 and the
// transaction goes on with the recipients already taken.
func TestRecipientLimit(t *testing.T) {
	r, b1, _ := twoBackends(t, Config{MaxRecipients: 2})
	c := r.dial()
	c.cmd("LHLO c", "250-")
	c.cmd("MAIL FROM:<s@x.test>", "250 ")
	c.cmd("RCPT TO:<alice@x.test>", "250 ")
	c.cmd("RCPT TO:<nobody@x.test>", "550 ")
	c.cmd("RCPT TO:<carol@x.test>", "452 4.5.3 Too many recipients")
	c.cmd("DATA", "354")
	c.send("hi", ".")
	c.expect("250 2.0.0 <alice@x.test>")
	if len(b1.messages("carol@x.test")) != 0 {
		t.Error("a recipient past the limit got the message")
	}
	// A new transaction has its own count.
	c.cmd("MAIL FROM:<s@x.test>", "250 ")
	c.cmd("RCPT TO:<carol@x.test>", "250 ")
}

// TestBareLFDotIsData: "\n.\n" and "\r\n.\n" do not end the data; what
// follows them is message content, not commands.
func TestBareLFDotIsData(t *testing.T) {
	r, b1, _ := twoBackends(t, Config{})
	c := r.dial()
	c.send("LHLO c", "MAIL FROM:<s@x.test>", "RCPT TO:<alice@x.test>", "DATA")
	for _, want := range []string{"250-", "250 ", "250 ", "354"} {
		c.expect(want)
	}
	if _, err := io.WriteString(c.c, "x\n.\nMAIL FROM:<evil@x.test>\r\n.\nRCPT TO:<carol@x.test>\r\n.\r\n"); err != nil {
		t.Fatal(err)
	}
	c.expect("250 2.0.0 <alice@x.test>")
	c.cmd("NOOP", "250 ")
	got := b1.messages("alice@x.test")
	if len(got) != 1 || !strings.Contains(got[0], "MAIL FROM:<evil@x.test>") || len(b1.messages("carol@x.test")) != 0 {
		t.Fatalf("alice got %q, carol %q", got, b1.messages("carol@x.test"))
	}
	for _, l := range b1.received() {
		if strings.Contains(l, "evil") {
			t.Errorf("smuggled command reached the backend: %q", l)
		}
	}
}

// FuzzDotData checks DATA framing both ways: readDot ends exactly at the
// first CRLF "." CRLF that starts a line (after CRLF) and unstuffs line
// starts, and dotWriter's output of what it read has that terminator only
// at its end, CRLF line ends only, and reads back to the same content.
func FuzzDotData(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", ".\r\n", "x\n.\nMAIL\r\n.\r\n", "..x\r\n\r\n.\r\n", "a\r\r\n.\r\n", "\r\n.\n.\r\n", "abc"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		content, err := readAll(in)
		wantEnd, wantContent := refDot(in)
		if (err == nil) != (wantEnd >= 0) || err == nil && !bytes.Equal(content, wantContent) {
			t.Fatalf("in %q: got %q %v, want end %d content %q", in, content, err, wantEnd, wantContent)
		}
		if err != nil {
			return
		}
		var out bytes.Buffer
		d := dotWriter{w: bufio.NewWriter(&out)}
		d.Write(content)
		d.Close()
		o := out.Bytes()
		if i := bytes.Index(o, []byte("\r\n.\r\n")); !bytes.HasPrefix(o, []byte(".\r\n")) && i != len(o)-5 || bytes.HasPrefix(o, []byte(".\r\n")) && len(o) != 3 {
			t.Fatalf("content %q written as %q", content, o)
		}
		if bytes.Count(o, []byte("\n")) != bytes.Count(o, []byte("\r\n")) {
			t.Fatalf("bare LF in %q", o)
		}
		back, err := readAll(o)
		norm := bytes.ReplaceAll(bytes.ReplaceAll(content, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
		if len(norm) > 0 && !bytes.HasSuffix(norm, []byte("\r\n")) {
			norm = append(norm, "\r\n"...)
		}
		if err != nil || !bytes.Equal(back, norm) {
			t.Fatalf("%q read back as %q %v, want %q", o, back, err, norm)
		}
	})
}

// readAll runs readDot over in with bufio's smallest buffer, so long lines
// arrive in pieces.
func readAll(in []byte) ([]byte, error) {
	var got []byte
	err := readDot(bufio.NewReaderSize(bytes.NewReader(in), 16), func() {}, func(p []byte) { got = append(got, p...) })
	return got, err
}

// refDot is the plain reading of RFC 5321's framing: lines start at 0 and
// after every CRLF; the data ends at the first such start holding ".\r\n";
// a dot starting a line before it is removed.
func refDot(in []byte) (end int, content []byte) {
	for p := 0; p < len(in); {
		next := bytes.Index(in[p:], []byte("\r\n"))
		if bytes.HasPrefix(in[p:], []byte(".\r\n")) {
			return p, content
		}
		line := in[p:]
		if next >= 0 {
			line = in[p : p+next+2]
		}
		content = append(content, bytes.TrimPrefix(line, []byte("."))...)
		p += len(line)
	}
	return -1, nil
}

// TestConnectionCeiling: a client past the service's ceiling gets 421 and
// is closed.
func TestConnectionCeiling(t *testing.T) {
	lim := &netx.Limiter{}
	lim.Set(netx.Limits{Total: 1})
	r, _, _ := twoBackends(t, Config{Limiter: lim})
	r.dial()
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	if got := cl.reply(); got != "421 4.3.2 Too many connections, try again later." {
		t.Fatalf("got %q", got)
	}
	if got := cl.reply(); got != "EOF" {
		t.Fatalf("not closed: %q", got)
	}
}
