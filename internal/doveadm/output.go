package doveadm

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// jsonEscape escapes s as a JSON string body the way clients expect doveadm output:
// quotes, backslashes and control characters escaped, everything else (non-ASCII included)
// raw. Invalid UTF-8 is replaced so that the response always stays valid JSON (spec 0).
func jsonEscape(s string) string {
	if plainJSON(s) {
		return s // the common case: nothing to escape, nothing to allocate
	}
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

// table is one command's printed output: header keys and rows, rendered like 2.3's json
// formatter (one object per row, keys in header order, values strings unless the column is
// numeric).
type table struct {
	keys    []string
	numeric []bool
	rows    [][]string
}

func newTable(keys ...string) *table {
	return &table{keys: keys, numeric: make([]bool, len(keys))}
}

func (t *table) add(vals ...string) { t.rows = append(t.rows, vals) }

func (t *table) appendJSON(b *strings.Builder) {
	b.WriteByte('[')
	if t != nil {
		keys := make([]string, len(t.keys))
		for j, k := range t.keys {
			keys[j] = jsonEscape(k)
		}
		b.Grow(len(t.rows) * 16 * (len(keys) + 1))
		for i, row := range t.rows {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('{')
			for j := range keys {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteByte('"')
				b.WriteString(keys[j])
				b.WriteString(`":`)
				v := ""
				if j < len(row) {
					v = row[j]
				}
				if t.numeric[j] && isJSONNumber(v) {
					b.WriteString(v)
				} else {
					b.WriteByte('"')
					b.WriteString(jsonEscape(v))
					b.WriteByte('"')
				}
			}
			b.WriteByte('}')
		}
	}
	b.WriteByte(']')
}

func isJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	l := newLexer([]byte(s))
	t, err := l.next()
	if err != nil || t.kind != tokNumber {
		return false
	}
	t, err = l.next()
	return err == nil && t.kind == tokEOF
}

// unixdate2str renders a unix timestamp as doveadm does: local time, "YYYY-MM-DD HH:MM:SS".
func unixdate2str(ts int64) string {
	return time.Unix(ts, 0).Local().Format("2006-01-02 15:04:05")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// plainJSON reports whether s is printable ASCII without quotes or
// backslashes, so it goes into a JSON string as it is.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
