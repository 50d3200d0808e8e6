package stats

import (
	"strconv"
	"testing"
	"time"
)

// FuzzField checks that any field name and any durations give either a
// rejected field or a JSON-number text, never a panic.
func FuzzField(f *testing.F) {
	for _, s := range append(DefaultFields, "variance", "%0", "%100", "%99.9", "%-5", "%1e308", "%NaN", "bogus") {
		f.Add(s, uint64(5), uint64(10), uint64(3))
	}
	f.Fuzz(func(t *testing.T, field string, a, b, c uint64) {
		s := New(nil)
		for _, v := range []uint64{a, b, c} {
			s.AuthSuccess("imap", time.Duration(v%(1<<40))*time.Microsecond)
		}
		s.Command("imap", field, time.Microsecond)
		for _, m := range s.Metrics(false) {
			v, ok := m.Field(field)
			if !ok {
				continue
			}
			if _, err := strconv.ParseFloat(v, 64); err != nil {
				t.Fatalf("field %q of %s = %q, not a number", field, m.Name, v)
			}
		}
	})
}
