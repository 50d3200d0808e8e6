package devbackend

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func start(t *testing.T) *Backend {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := Start("127.0.0.1:0", "b1", map[string]string{"alice": "secret", "bob": "pw"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestLoginListFetch(t *testing.T) {
	b := start(t)
	c, err := imapclient.DialInsecure(b.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	if !c.Caps().Has(imap.Cap("ID")) {
		t.Fatalf("ID not advertised: %v", c.Caps())
	}
	id, err := c.ID(&imap.IDData{Name: "test"}).Wait()
	if err != nil {
		t.Fatalf("ID before login: %v", err)
	}
	if id == nil || id.Name != "usher-devbackend" {
		t.Fatalf("ID reply %+v", id)
	}
	if err := c.Login("alice", "secret").Wait(); err != nil {
		t.Fatal(err)
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil || len(boxes) != 1 || boxes[0].Mailbox != "INBOX" {
		t.Fatalf("LIST: %v %v", boxes, err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != uint32(len(demoMessages)) {
		t.Fatalf("SELECT: %+v %v", sel, err)
	}
	body := &imap.FetchItemBodySection{}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH: %v %v", msgs, err)
	}
	if s := msgs[0].Envelope.Subject; s != "Welcome to backend b1" {
		t.Fatalf("subject %q", s)
	}
	if text := string(msgs[0].FindBodySection(body)); !strings.Contains(text, "Hello alice") || !strings.Contains(text, "backend b1") {
		t.Fatalf("body %q", text)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestWrongPassword(t *testing.T) {
	b := start(t)
	c, err := imapclient.DialInsecure(b.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "wrong").Wait(); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := c.Login("bob", "pw").Wait(); err != nil {
		t.Fatalf("retry after failure: %v", err)
	}
}

// usher's proxy pipelines ID and LOGIN the way Dovecot's does, raw.
func TestPipelinedIDLogin(t *testing.T) {
	b := start(t)
	conn, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	greeting, _ := r.ReadString('\n')
	if !strings.HasPrefix(greeting, "* OK [CAPABILITY IMAP4rev1 ID ") {
		t.Fatalf("greeting %q", greeting)
	}
	_, err = io.WriteString(conn, "I ID (\"x-originating-ip\" \"127.0.0.1\" \"x-proxy-ttl\" \"4\")\r\n"+
		"C CAPABILITY\r\nL LOGIN \"bob\" \"pw\"\r\nX LOGOUT\r\n")
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(r)
	want := []string{"* ID (\"name\" \"usher-devbackend\" \"backend\" \"b1\")\r\n", "I OK ID completed.\r\n",
		"* CAPABILITY IMAP4rev1 ID ", "C OK ", "L OK ", "X OK "}
	rest := string(all)
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("missing %q (in order) in %q", w, all)
		}
		rest = rest[i+len(w):]
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:143", ":143", "example.com:143", "nonsense"} {
		if b, err := Start(addr, "b1", nil, nil); err == nil {
			b.Close()
			t.Errorf("%s accepted", addr)
		}
	}
}

func TestCloseIdempotent(t *testing.T) {
	b := start(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := net.Dial("tcp", b.Addr().String()); err == nil {
		t.Fatal("still listening after Close")
	}
}
