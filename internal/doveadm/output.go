package doveadm

import (
	"strconv"
	"strings"
	"time"

	"github.com/usher-mail/usher/internal/jsonesc"
)

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
			keys[j] = jsonesc.Escape(k)
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
					b.WriteString(jsonesc.Escape(v))
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
