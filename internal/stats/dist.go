package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// sampleCount is the size of the reservoir percentiles and the median are
// computed from. Dovecot keeps 20*24 samples per metric; using the same size
// gives the same precision on big counts.
const sampleCount = 480

// dist is a duration distribution in microseconds, as a Dovecot metric keeps
// it: exact count, sum, min and max, and a uniform reservoir of samples.
type dist struct {
	mu       sync.Mutex
	count    uint64
	sum      uint64
	min, max uint64
	samples  []uint64
}

func (d *dist) add(v uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.count < sampleCount {
		d.samples = append(d.samples, v)
	} else if i := rand.Uint64N(d.count); i < sampleCount {
		d.samples[i] = v
	}
	if d.count == 0 || v < d.min {
		d.min = v
	}
	if v > d.max {
		d.max = v
	}
	d.count++
	d.sum += v
}

func (d *dist) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.count, d.sum, d.min, d.max = 0, 0, 0, 0
	d.samples = d.samples[:0]
}

// snapshot copies the distribution into m (Name left alone).
func (d *dist) snapshot(m *Metric) {
	d.mu.Lock()
	m.Count, m.Sum, m.Min, m.Max = d.count, d.sum, d.min, d.max
	m.samples = slices.Clone(d.samples)
	d.mu.Unlock()
	slices.Sort(m.samples)
	if m.Count == 0 {
		return
	}
	m.Avg = float64(m.Sum) / float64(m.Count)
	var sq float64
	for _, v := range m.samples {
		sq += (float64(v) - m.Avg) * (float64(v) - m.Avg)
	}
	// Population variance of the samples around the exact mean, as Dovecot.
	m.Variance = sq / float64(len(m.samples))
	n := len(m.samples)
	m.Median = (m.samples[(n-1)/2] + m.samples[n/2]) / 2
}

// Metric is one row group of the 2.3 `stats dump`: a duration distribution
// in microseconds.
type Metric struct {
	Name                 string // e.g. auth_success, imap_command_SELECT
	Count, Sum, Min, Max uint64
	Median               uint64
	Avg, Variance        float64
	samples              []uint64 // sorted
}

// Percentile is the nearest-rank value for fraction (0.95 for %95): the
// smallest sample with at least that share of samples at or below it.
func (m Metric) Percentile(fraction float64) uint64 {
	n := len(m.samples)
	if n == 0 {
		return 0
	}
	switch {
	case fraction >= 1:
		return m.samples[n-1]
	case fraction <= 0:
		return m.samples[0]
	}
	x := float64(n) * fraction
	i := int(x)
	// A product that lands on a whole number (within float noise) belongs
	// to the rank below it.
	if x-float64(i) < 1e-8*float64(n) {
		i--
	}
	return m.samples[max(i, 0)]
}

// Stddev is the standard deviation as doveadm prints it: the square root of
// the variance after the variance went over the wire as %.02f.
func (m Metric) Stddev() float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(m.Variance, 'f', 2, 64), 64)
	return math.Sqrt(v)
}

// DefaultFields are doveadm's `stats dump` fields when none are given.
var DefaultFields = []string{"count", "sum", "min", "max", "avg", "median", "stddev", "%95"}

// Field renders one field of a dump row the way doveadm prints it (a JSON
// number: integers plain, avg/stddev/variance with two decimals). ok is
// false for a field name Dovecot does not know.
func (m Metric) Field(name string) (value string, ok bool) {
	u := func(v uint64) (string, bool) { return strconv.FormatUint(v, 10), true }
	f := func(v float64) (string, bool) { return strconv.FormatFloat(v, 'f', 2, 64), true }
	switch name {
	case "count":
		return u(m.Count)
	case "sum":
		return u(m.Sum)
	case "min":
		return u(m.Min)
	case "max":
		return u(m.Max)
	case "avg":
		return f(m.Avg)
	case "median":
		return u(m.Median)
	case "stddev":
		return f(m.Stddev())
	case "variance":
		return f(m.Variance)
	}
	if p, found := strings.CutPrefix(name, "%"); found {
		x, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(x) {
			return "", false
		}
		return u(m.Percentile(x / 100))
	}
	return "", false
}
