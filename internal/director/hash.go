package director

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultUserHashTemplate is Dovecot's director_username_hash default.
const DefaultUserHashTemplate = "%Lu"

// ErrExpand wraps every template expansion failure, so callers can answer TRYAGAIN the way the
// director-admin socket does without matching error strings.
var ErrExpand = errors.New("director: failed to expand username hash template")

// UserHash maps a login name to its 32-bit position on the ring: MD5 of the expanded template,
// first four bytes big-endian, with 0 mapped to 1 (0 means "no user" inside Dovecot).
//
// Supported: literal text, %%, the variables %u/%{user}, %n/%{username} (before the first '@'),
// %d/%{domain} (after it, empty without '@'), and the modifiers L and U (ASCII-only case
// mapping, like Dovecot). As in Dovecot, a trailing '%' is dropped and an empty template hashes
// the empty string for everyone. Anything else (unknown variables, width specifiers, other
// modifiers) fails with an error wrapping ErrExpand: Dovecot fails the same way for unknown
// variables; for the rest it applies features usher does not implement.
func UserHash(template, user string) (uint32, error) {
	var in string
	switch template {
	case "%u":
		in = user
	case DefaultUserHashTemplate:
		in = asciiLower(user)
	default:
		s, err := expand(template, user)
		if err != nil {
			return 0, err
		}
		in = s
	}
	return hashString(in), nil
}

func hashString(s string) uint32 {
	return digestHash(md5.Sum([]byte(s)))
}

// digestHash keeps 0 free: Dovecot uses it for "no hash".
func digestHash(sum [md5.Size]byte) uint32 {
	if h := binary.BigEndian.Uint32(sum[:4]); h != 0 {
		return h
	}
	return 1
}

// ParseHashArg reports whether an admin-socket user argument is purely numeric, in which case
// USER-LOOKUP and USER-MOVE take it as the hash itself. Values above 2^32-1 are not numeric
// hashes (Dovecot's str_to_uint fails) and are then hashed as a username.
func ParseHashArg(s string) (uint32, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

func expand(template, user string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(template); i++ {
		c := template[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		lower, upper := false, false
	mods:
		for i++; i < len(template); i++ {
			switch template[i] {
			case 'L':
				lower = true
			case 'U':
				upper = true
			default:
				break mods
			}
		}
		// Dovecot drops a '%' (with modifiers) at the very end, and "%L%" is a plain '%'.
		if i >= len(template) {
			break
		}
		if template[i] == '%' {
			b.WriteByte('%')
			continue
		}
		var v string
		var ok bool
		if template[i] == '{' {
			end := strings.IndexByte(template[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("%w %q: unterminated %%{", ErrExpand, template)
			}
			v, ok = longVariable(template[i+1:i+end], user)
			i += end
		} else {
			v, ok = shortVariable(template[i], user)
		}
		if !ok {
			return "", fmt.Errorf("%w %q: unknown variable at offset %d", ErrExpand, template, i)
		}
		if lower {
			v = asciiLower(v)
		}
		if upper {
			v = asciiUpper(v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

func shortVariable(c byte, user string) (string, bool) {
	switch c {
	case 'u':
		return user, true
	case 'n':
		return userPart(user), true
	case 'd':
		return domainPart(user), true
	}
	return "", false
}

// longVariable knows only the %{name} forms; %{u} is unknown in Dovecot too.
func longVariable(name, user string) (string, bool) {
	switch name {
	case "user":
		return user, true
	case "username":
		return userPart(user), true
	case "domain":
		return domainPart(user), true
	}
	return "", false
}

func userPart(user string) string {
	n, _, _ := strings.Cut(user, "@")
	return n
}

func domainPart(user string) string {
	_, d, _ := strings.Cut(user, "@")
	return d
}

// asciiLower maps only A-Z, like Dovecot's t_str_lcase: non-ASCII capitals hash as written.
func asciiLower(s string) string {
	return mapASCII(s, 'A', 'Z', 'a'-'A')
}

func asciiUpper(s string) string {
	return mapASCII(s, 'a', 'z', 'A'-'a')
}

func mapASCII(s string, lo, hi byte, delta int) string {
	i := 0
	for i < len(s) && (s[i] < lo || s[i] > hi) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if b[i] >= lo && b[i] <= hi {
			b[i] = byte(int(b[i]) + delta)
		}
	}
	return string(b)
}
