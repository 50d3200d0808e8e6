package penalty

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzOps drives the table with arbitrary sequences of begin/fail/succeed
// and clock steps, checking the invariants anvil's table keeps.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{1, 1, 1, 1, 1, 0x83, 1, 0xff, 2})
	f.Add([]byte("\x01\x11\x21\x31\x41\x02\x12"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		c := newClock()
		tab := New(c.now)
		tab.SetMaxIdents(5)
		for _, op := range ops {
			ip := netip.AddrFrom4([4]byte{192, 0, 2, op >> 4 & 7})
			if op&0x80 != 0 {
				ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, op >> 4 & 3, 15: op})
			}
			switch op & 3 {
			case 0:
				c.add(time.Duration(op>>2) * time.Second)
			case 1:
				d, a := tab.Begin(ip)
				if a < 0 || a > MaxPenalty || d < 0 || d > maxSecs*time.Second {
					t.Fatalf("Begin: %v %d", d, a)
				}
				tab.Fail(ip, a, "u", string(rune('a'+op>>5)))
			case 2:
				_, a := tab.Begin(ip)
				tab.Succeed(ip, a)
			case 3:
				tab.Fail(ip, int(op>>2)%8, "v", "")
			}
		}
		d := tab.Dump()
		if len(d) > 5 {
			t.Fatalf("%d records over the bound", len(d))
		}
		for i, r := range d {
			if r.Penalty < 0 || r.Penalty > MaxPenalty {
				t.Fatalf("penalty %d", r.Penalty)
			}
			if i > 0 && r.LastUpdate.Before(d[i-1].LastUpdate) {
				t.Fatalf("dump not oldest first: %+v", d)
			}
			if !c.now().Add(-ExpireSecs * time.Second).Before(r.LastUpdate) {
				t.Fatalf("expired record dumped: %+v", r)
			}
		}
	})
}
