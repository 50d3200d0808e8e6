// Package tabescape is Dovecot's escaping of fields in its tab-separated line protocols (the
// director-admin socket, the auth-client protocol): 0x01 is the escape byte, followed by '1'
// for itself, 't' for a tab, 'r' for CR, 'n' for LF and '0' for NUL, so a field never holds a
// separator.
package tabescape

import "strings"

var escaper = strings.NewReplacer("\x01", "\x011", "\t", "\x01t", "\r", "\x01r", "\n", "\x01n", "\x00", "\x010")

// Escape escapes one field.
func Escape(s string) string {
	if !strings.ContainsAny(s, "\x01\t\r\n\x00") {
		return s
	}
	return escaper.Replace(s)
}

// Unescape reverses Escape. It reads what Escape never writes as Dovecot does: an escape byte
// before any other byte stands for that byte, and one at the very end for nothing.
func Unescape(s string) string {
	i := strings.IndexByte(s, '\x01')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] != '\x01' {
			b = append(b, s[i])
			continue
		}
		if i++; i == len(s) {
			break
		}
		switch c := s[i]; c {
		case '1':
			b = append(b, '\x01')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'n':
			b = append(b, '\n')
		case '0':
			b = append(b, 0)
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// Split splits a line into unescaped tab-separated fields.
func Split(line string) []string {
	f := strings.Split(line, "\t")
	for i := range f {
		f[i] = Unescape(f[i])
	}
	return f
}

// Join builds a line from fields, escaping each.
func Join(fields ...string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(Escape(f))
	}
	return b.String()
}
