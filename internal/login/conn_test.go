package login

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

// Lines end in CRLF or a bare LF; one longer than the limit ends the connection, and a bare
// LF does not buy the byte a CR would take.
func TestReadLine(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("a\r\nbb\n" + strings.Repeat("y", 11) + "\n" + strings.Repeat("x", 20) + "\r\n"))
	for _, want := range []string{"a", "bb"} {
		if l, err := ReadLine(br, 10); l != want || err != nil {
			t.Fatalf("got %q %v, want %q", l, err, want)
		}
	}
	for range 2 {
		if _, err := ReadLine(br, 10); !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("got %v, want ErrLineTooLong", err)
		}
	}
}
