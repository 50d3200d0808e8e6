package tabescape

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"", "a\tb", "\x01", "x\r\n\x00y", "\x01t", "plain"} {
		if got := Unescape(Escape(s)); got != s {
			t.Fatalf("round trip %q -> %q", s, got)
		}
		if strings.ContainsAny(Escape(s), "\t\n\r\x00") {
			t.Fatalf("escape left a separator in %q", Escape(s))
		}
	}
	if got := Split(Join("a\tb", "", "c\n")); len(got) != 3 || got[0] != "a\tb" || got[1] != "" || got[2] != "c\n" {
		t.Fatalf("Split(Join) = %q", got)
	}
	// Dovecot's reading of escapes it never writes: the byte after 0x01 stands for itself,
	// and a lone escape byte at the end for nothing.
	if got := Unescape("a\x01xb\x01"); got != "axb" {
		t.Fatalf("unknown escapes: %q", got)
	}
}

// FuzzUnescape: escaping then unescaping is the identity, and an escaped field has no separator.
func FuzzUnescape(f *testing.F) {
	f.Add("a\tb\x01\x00")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if Unescape(e) != s || strings.ContainsAny(e, "\t\r\n\x00") {
			t.Fatalf("%q -> %q -> %q", s, e, Unescape(e))
		}
	})
}
