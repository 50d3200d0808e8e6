package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "15": 15 * time.Second, "3s": 3 * time.Second, "3 secs": 3 * time.Second,
		"3 seconds": 3 * time.Second, "3secon": 3 * time.Second, "3S": 3 * time.Second,
		"1500ms": 1500 * time.Millisecond, "2 msecs": 2 * time.Millisecond, "3mil": 3 * time.Millisecond,
		"3m": 3 * time.Minute, "3 mins": 3 * time.Minute, "3minute": 3 * time.Minute, "3M": 3 * time.Minute,
		"2h": 2 * time.Hour, "2 hours": 2 * time.Hour, "1d": 24 * time.Hour, "1 da": 24 * time.Hour,
		"2w": 14 * 24 * time.Hour, "1 weeks": 7 * 24 * time.Hour,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "s", "3x", "3 hr", "3minutess", "1.5h", "99999999999999999999", "9999999999999 weeks"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
	if _, err := parseSeconds("1500ms"); err == nil || err.Error() != "Milliseconds not supported for this setting: 1500ms" {
		t.Errorf("parseSeconds(1500ms) err = %v", err)
	}
	if d, err := parseSeconds("2000 ms"); err != nil || d != 2*time.Second {
		t.Errorf("parseSeconds(2000 ms) = %v, %v", d, err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "3": 3, "3b": 3, "3 B": 3, "64k": 64 << 10, "64 k": 64 << 10, "3kb": 3 << 10, "3KiB": 3 << 10,
		"2m": 2 << 20, "2 MB": 2 << 20, "1g": 1 << 30, "1t": 1 << 40,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "3kx", "3bytes", "3kilo", "3e", "-1", "99999999999999999999t", "20000000000000000 g"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

// Dovecot 2.3.19 accepts yes, y and 1 (any case) and no; nothing else.
func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"yes": true, "YES": true, "y": true, "1": true, "no": false, "NO": false} {
		if got, err := parseBool(in); err != nil || got != want {
			t.Errorf("parseBool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"true", "false", "0", "n", "off", "", "ye"} {
		if _, err := parseBool(in); err == nil {
			t.Errorf("parseBool(%q) succeeded", in)
		}
	}
}
