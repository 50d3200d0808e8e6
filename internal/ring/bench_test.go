package ring

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/cluster"
)

// BenchmarkAssign3 assigns new users through all three directors of a
// loopback ring (two thirds forwarded) from 64 concurrent logins, and
// reports assignments/s and the p99 latency of one assignment.
func BenchmarkAssign3(b *testing.B) {
	tr := newTestRing(b, 3, nil, nil)
	ctx := context.Background()
	if _, err := applyRetry(ctx, tr.rings[0].Node(), hostSet(ip1)); err != nil {
		b.Fatal(err)
	}
	var next atomic.Uint32
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := tr.rings[w%3].Node()
			for {
				i := next.Add(1) - 1
				if int(i) >= b.N {
					return
				}
				t0 := time.Now()
				c := cluster.Command{Op: cluster.OpUserAssign, Hash: i + 1, IP: ip1, Now: 100, Expire: 900}
				if _, err := n.Apply(ctx, c); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/el.Seconds(), "assign/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
