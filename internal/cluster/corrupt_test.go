package cluster

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenCorruptStore: a raft.db whose data pages are garbage makes Open
// fail with an error naming the file, instead of a panic inside bbolt.
func TestOpenCorruptStore(t *testing.T) {
	for _, fill := range []byte{0xff, 0x00, 0x10} {
		dir := t.TempDir()
		n := openNode(t, dir)
		for i := range 50 {
			mustApply(t, n, assign("", uint32(i+1), ip1, 100))
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "raft.db")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		const page = 4096
		if len(data) < 4*page {
			t.Fatalf("raft.db has only %d bytes", len(data))
		}
		copy(data[2*page:], bytes.Repeat([]byte{fill}, len(data)-2*page)) // every page after the two meta pages
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		n2, err := Open(Config{Dir: dir, Logger: quietLogger()})
		if err == nil {
			n2.Close()
			t.Fatalf("fill %#x: a corrupted raft.db opened", fill)
		}
		if !strings.Contains(err.Error(), "raft.db") {
			t.Errorf("fill %#x: %v", fill, err)
		}
	}
}
