package health

import "testing"

func TestTracker(t *testing.T) {
	tests := []struct {
		name       string
		start      bool   // initial verdict: down
		results    string // '+' pass, '-' fail
		fall, rise int
		flips      string // '^' where the verdict flipped, '.' elsewhere
	}{
		{"passes keep up", false, "+++", 3, 2, "..."},
		{"fall failures put down", false, "---", 3, 2, "..^"},
		{"a pass restarts the count", false, "--+--+---", 3, 2, "........^"},
		{"rise passes bring up", true, "++", 3, 2, ".^"},
		{"a failure restarts the rise count", true, "+-+-++", 3, 2, ".....^"},
		{"down then up then down", false, "---++---", 3, 2, "..^.^..^"},
		{"fall 1 flips at once", false, "-+", 1, 1, "^^"},
		{"zero counts mean 1", false, "-", 0, 0, "^"},
		{"failures while down change nothing", true, "-----", 3, 2, "....."},
	}
	for _, tc := range tests {
		tr := tracker{down: tc.start}
		got := ""
		for _, r := range tc.results {
			if tr.observe(r == '+', tc.fall, tc.rise) {
				got += "^"
			} else {
				got += "."
			}
		}
		if got != tc.flips {
			t.Errorf("%s: flips %s, want %s", tc.name, got, tc.flips)
		}
	}
}
