package pop3

import (
	"bufio"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct{ line, name, args string }{
		{"user a b", "USER", "a b"},
		{"CAPA", "CAPA", ""},
		{"PASS  lead", "PASS", " lead"},
		{"", "", ""},
	} {
		if got := parseCommand(tc.line); got.name != tc.name || got.args != tc.args {
			t.Errorf("%q: got %+v", tc.line, got)
		}
	}
}

// FuzzPOP3Command feeds arbitrary client input through the framing and the parsers the
// pre-login loop uses; none may panic, and what they return must be consistent.
func FuzzPOP3Command(f *testing.F) {
	for _, s := range []string{
		"CAPA\r\n", "USER a b\r\nPASS c\r\n", "AUTH PLAIN AHUxAHBhc3M=\r\n", "XCLIENT ADDR=1.2.3.4 PORT=5 TTL=3\r\n",
		"\r\n", "auth\n", "XCLIENT ADDR=::1 SESSION=" + strings.Repeat("x", 70) + "\r\n", "\x00\xff\r\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(strings.NewReader(string(data)))
		for {
			line, err := readLine(br, 64)
			if err != nil {
				return
			}
			if len(line) > 66 || strings.HasSuffix(line, "\n") {
				t.Fatalf("line %q", line)
			}
			cmd := parseCommand(line)
			if cmd.name != strings.ToUpper(cmd.name) || strings.Contains(cmd.name, " ") {
				t.Fatalf("name %q", cmd.name)
			}
			if x, ok := login.ParseXCLIENT(cmd.args); ok && (x.TTL < -1 || x.TTL > 255 || len(x.Session) > 64) {
				t.Fatalf("xclient %+v", x)
			}
		}
	})
}
