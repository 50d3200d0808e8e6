package jsonesc

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain user@example.com", "plain user@example.com"},
		{`a"b\c`, `a\"b\\c`},
		{"t\tn\nr\rb\bf\f", `t\tn\nr\rb\bf\f`},
		{"\x00\x01\x1f", `\u0000\u0001\u001f`},
		{"Zoë 例え", "Zoë 例え"}, // non-ASCII stays raw, as doveadm writes it
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"\x7f", "\x7f"},
	}
	for _, tc := range tests {
		got := Escape(tc.in)
		if got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// Whatever the input, the result is a valid JSON string that decodes to the
		// input with invalid UTF-8 replaced.
		var back string
		if err := json.Unmarshal([]byte(`"`+got+`"`), &back); err != nil {
			t.Errorf("Escape(%q) = %q is not a JSON string body: %v", tc.in, got, err)
		} else if want := strings.ToValidUTF8(tc.in, "\uFFFD"); back != want {
			t.Errorf("Escape(%q) decodes to %q, want %q", tc.in, back, want)
		}
	}
}
