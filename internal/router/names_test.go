package router

import (
	"strconv"
	"strings"
	"testing"
)

// TestRememberBoundedByBytes: the names kept for `director map` stay under
// maxNameBytes however long the names are (a count bound alone let 1 KiB
// names take 200 MB).
func TestRememberBoundedByBytes(t *testing.T) {
	r := &Router{names: map[string]struct{}{}}
	pad := strings.Repeat("x", 1000)
	for i := range maxNameBytes/1000 + 5000 {
		r.remember(strconv.Itoa(i) + pad)
	}
	total := 0
	for n := range r.names {
		total += len(n)
	}
	if total != r.nameBytes || total > maxNameBytes {
		t.Fatalf("%d bytes kept (counted %d), bound %d", total, r.nameBytes, maxNameBytes)
	}
}
