package cli

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// jsonEscape escapes s the way doveadm's json formatter does: quotes, backslashes and
// control characters; non-ASCII stays raw. Invalid UTF-8 is replaced to keep JSON valid.
func jsonEscape(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
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

// isNumber reports whether s is one JSON number, so that it may be written unquoted.
func isNumber(s string) bool {
	if s == "" || strings.TrimSpace(s) != s {
		return false
	}
	var n json.Number
	if json.Unmarshal([]byte(s), &n) != nil {
		return false
	}
	return n.String() == s
}
