package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a Dovecot time interval: a number of seconds, or a
// number followed by a unit (ms, s, m, h, d, w or any prefix of their long
// forms such as "secs", "minutes", "weeks"), case-insensitive, optionally
// separated by spaces. As in Dovecot, "m" means minutes.
func ParseDuration(s string) (time.Duration, error) {
	n, unit, ok := splitNumber(s)
	if !ok {
		return 0, fmt.Errorf("Invalid time interval: %s", s)
	}
	mult, ok := durationUnit(strings.ToLower(unit))
	if !ok || n > uint64(math.MaxInt64/int64(mult)) {
		return 0, fmt.Errorf("Invalid time interval: %s", s)
	}
	return time.Duration(n) * mult, nil
}

// parseSeconds is ParseDuration for settings Dovecot keeps in whole seconds.
func parseSeconds(s string) (time.Duration, error) {
	d, err := ParseDuration(s)
	if err == nil && d%time.Second != 0 {
		return 0, fmt.Errorf("Milliseconds not supported for this setting: %s", s)
	}
	return d, err
}

func durationUnit(u string) (time.Duration, bool) {
	if u == "" {
		return time.Second, true
	}
	prefixOf := func(words ...string) bool {
		for _, w := range words {
			if strings.HasPrefix(w, u) {
				return true
			}
		}
		return false
	}
	switch {
	case prefixOf("seconds", "secs"):
		return time.Second, true
	case prefixOf("minutes", "mins"):
		return time.Minute, true
	case prefixOf("milliseconds", "msecs"):
		return time.Millisecond, true
	case prefixOf("hours"):
		return time.Hour, true
	case prefixOf("days"):
		return 24 * time.Hour, true
	case prefixOf("weeks"):
		return 7 * 24 * time.Hour, true
	}
	return 0, false
}

// ParseSize reads a Dovecot size: a number of bytes, optionally followed by
// b, k, m, g or t (with an optional "b" or "ib" after the letter),
// case-insensitive; units are powers of 1024.
func ParseSize(s string) (uint64, error) {
	n, unit, ok := splitNumber(s)
	if !ok {
		return 0, fmt.Errorf("Invalid size: %s", s)
	}
	unit = strings.ToLower(unit)
	shift := 0
	if unit != "" && unit != "b" {
		shift = 10 * (strings.IndexByte("kmgt", unit[0]) + 1)
		if shift == 0 || (unit[1:] != "" && unit[1:] != "b" && unit[1:] != "ib") {
			return 0, fmt.Errorf("Invalid size: %s", s)
		}
	}
	if n > math.MaxUint64>>shift {
		return 0, fmt.Errorf("Invalid size: %s: too large", s)
	}
	return n << shift, nil
}

// splitNumber splits "123 unit" into its leading decimal number and the unit
// after optional spaces.
func splitNumber(s string) (uint64, string, bool) {
	s = strings.TrimSpace(s)
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 {
		return 0, "", false
	}
	n, err := strconv.ParseUint(s[:end], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return n, strings.TrimLeft(s[end:], " "), true
}

// parseBool accepts what Dovecot 2.3.19 accepts: yes, y or 1 and no,
// case-insensitive. Anything else, such as "true", is an error.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "y", "1":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("Invalid boolean value: %s (use yes or no)", s)
}

// parseUint reads a plain decimal number that must fit max.
func parseUint(s string, max uint64) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("Invalid number %s: Not a valid number", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, fmt.Errorf("Invalid number %s: Number too large", s)
	}
	return int(n), nil
}

func parsePort(s string) (int, error) {
	n, err := parseUint(s, 65535)
	if err != nil {
		return 0, fmt.Errorf("Invalid port %s: must be a number from 0 to 65535", s)
	}
	return n, nil
}
