package health

import "testing"

func TestTracker(t *testing.T) {
	tests := []struct {
		name       string
		start      bool   // initial verdict: down
		armed      bool   // the port is known or a check passed before
		results    string // '+' pass, '-' fail
		fall, rise int
		flips      string // '^' where the verdict flipped, '.' elsewhere
	}{
		{"passes keep up", false, true, "+++", 3, 2, "..."},
		{"fall failures put down", false, true, "---", 3, 2, "..^"},
		{"a pass restarts the count", false, true, "--+--+---", 3, 2, "........^"},
		{"rise passes bring up", true, true, "++", 3, 2, ".^"},
		{"a failure restarts the rise count", true, true, "+-+-++", 3, 2, ".....^"},
		{"down then up then down", false, true, "---++---", 3, 2, "..^.^..^"},
		{"fall 1 flips at once", false, true, "-+", 1, 1, "^^"},
		{"zero counts mean 1", false, true, "-", 0, 0, "^"},
		{"failures while down change nothing", true, true, "-----", 3, 2, "....."},
		{"never passed: failures do not put down", false, false, "------", 3, 2, "......"},
		{"the first pass arms the checks", false, false, "--+---", 3, 2, ".....^"},
		{"never passed, down: passes bring up", true, false, "++", 3, 2, ".^"},
	}
	for _, tc := range tests {
		tr := tracker{down: tc.start, armed: tc.armed}
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

// TestTrackerPorts: a new guessed port starts over (the streak and the proof
// that checks can pass are both for the old port); a known port counts
// failures from the start.
func TestTrackerPorts(t *testing.T) {
	tr := tracker{}
	tr.probing(143, false)
	tr.observe(true, 3, 2)
	tr.observe(false, 3, 2)
	tr.observe(false, 3, 2)
	tr.probing(143, false)
	if !tr.observe(false, 3, 2) {
		t.Fatal("the same port started over")
	}
	tr = tracker{}
	tr.probing(143, false)
	tr.observe(true, 3, 2)
	tr.probing(21143, false)
	for i := range 5 {
		if tr.observe(false, 3, 2) {
			t.Fatalf("failure %d on a new guessed port that never passed put the host down", i+1)
		}
	}
	tr.probing(21143, true) // the passdb sends every login there
	tr.observe(false, 3, 2)
	tr.observe(false, 3, 2)
	if !tr.observe(false, 3, 2) {
		t.Fatal("fall failures on a known port did not put the host down")
	}
}
