// Package admin serves the director-admin line protocol (Dovecot 2.3's
// doveadm <-> director socket), so that Debian's own `doveadm director ...
// -a HOST:PORT`, poolmon and usher's API all drive usher the same way.
package admin

import "strings"

// Dovecot's tab-escaping: 0x01 is the escape byte.
var (
	escaper   = strings.NewReplacer("\x01", "\x011", "\t", "\x01t", "\r", "\x01r", "\n", "\x01n", "\x00", "\x010")
	unescaper = strings.NewReplacer("\x011", "\x01", "\x01t", "\t", "\x01r", "\r", "\x01n", "\n", "\x010", "\x00")
)

// Escape tab-escapes one field.
func Escape(s string) string { return escaper.Replace(s) }

// Unescape reverses Escape.
func Unescape(s string) string { return unescaper.Replace(s) }

// SplitLine splits a command line into unescaped tab-separated fields.
func SplitLine(line string) []string {
	f := strings.Split(line, "\t")
	for i := range f {
		f[i] = Unescape(f[i])
	}
	return f
}

// JoinLine builds a reply line from fields, escaping each.
func JoinLine(fields ...string) string {
	for i := range fields {
		fields[i] = Escape(fields[i])
	}
	return strings.Join(fields, "\t")
}
