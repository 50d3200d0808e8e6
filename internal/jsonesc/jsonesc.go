// Package jsonesc escapes strings for JSON the way doveadm's JSON output
// does, for the doveadm HTTP API (internal/doveadm) and its client
// (internal/cli) alike.
package jsonesc

import (
	"strings"
	"unicode/utf8"
)

// Escape returns s as the body of a JSON string: quotes, backslashes and
// control characters escaped, everything else (non-ASCII included) raw.
// Invalid UTF-8 is replaced by U+FFFD so that the output is always valid
// JSON.
func Escape(s string) string {
	if plain(s) {
		return s // the common case: nothing to escape, nothing to allocate
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte("0123456789abcdef"[c>>4])
				b.WriteByte("0123456789abcdef"[c&15])
			} else {
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

// plain reports whether s is printable ASCII without quotes or
// backslashes, so it goes into a JSON string as it is.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
