package passdb

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"strings"
)

// ErrUnknownScheme means a stored password names a scheme usher cannot verify; the login
// fails as a temporary error rather than as a wrong password.
var ErrUnknownScheme = errors.New("unknown password scheme")

// SplitScheme separates "{SCHEME}stored" into the upper-cased scheme and the stored value. A
// value without a {SCHEME} prefix gets def.
func SplitScheme(stored, def string) (scheme, value string) {
	if strings.HasPrefix(stored, "{") {
		if end := strings.IndexByte(stored, '}'); end > 1 {
			return strings.ToUpper(stored[1:end]), stored[end+1:]
		}
	}
	return strings.ToUpper(def), stored
}

// Supported reports whether Check knows the scheme (its encoding suffix aside).
func Supported(scheme string) bool {
	name, _, _ := strings.Cut(strings.ToUpper(scheme), ".")
	switch name {
	case "PLAIN", "CLEARTEXT", "CRYPT", "SHA256-CRYPT", "SHA512-CRYPT", "MD5-CRYPT", "MD5",
		"BLF-CRYPT", "SHA", "SHA1", "SHA256", "SHA512", "SSHA", "SSHA256", "SSHA512", "PLAIN-MD5",
		"LDAP-MD5", "SMD5", "PBKDF2", "ARGON2ID", "ARGON2I":
		return true
	}
	return false
}

// Check reports whether pass matches the stored value of the given scheme. The comparison of
// derived values is constant-time, so the answer's timing does not leak how much matched.
// Scheme names may carry Dovecot's encoding suffix (".HEX", ".B64", ".BASE64").
func Check(scheme, stored, pass string) (bool, error) {
	name, enc, _ := strings.Cut(scheme, ".")
	switch name {
	case "PLAIN", "CLEARTEXT":
		return equal([]byte(stored), []byte(pass)), nil
	case "CRYPT", "SHA256-CRYPT", "SHA512-CRYPT", "MD5-CRYPT", "MD5", "BLF-CRYPT":
		// Like crypt(3), the stored value's prefix picks the algorithm, whatever the name.
		switch {
		case strings.HasPrefix(stored, "$5$"), strings.HasPrefix(stored, "$6$"):
			got, ok := shaCrypt(pass, stored)
			return ok && equal([]byte(got), []byte(stored)), nil
		case strings.HasPrefix(stored, "$1$"):
			got, ok := md5Crypt(pass, stored)
			return ok && equal([]byte(got), []byte(stored)), nil
		case strings.HasPrefix(stored, "$2"):
			return bcryptCheck(stored, pass)
		}
		return false, ErrUnknownScheme
	case "PBKDF2":
		return pbkdf2Check(stored, pass)
	case "ARGON2ID", "ARGON2I":
		return argon2Check(stored, pass)
	case "SHA", "SHA1":
		return digestCheck(sha1.New, enc, stored, pass, false)
	case "SHA256":
		return digestCheck(sha256.New, enc, stored, pass, false)
	case "SHA512":
		return digestCheck(sha512.New, enc, stored, pass, false)
	case "SSHA":
		return digestCheck(sha1.New, enc, stored, pass, true)
	case "SSHA256":
		return digestCheck(sha256.New, enc, stored, pass, true)
	case "SSHA512":
		return digestCheck(sha512.New, enc, stored, pass, true)
	case "PLAIN-MD5", "LDAP-MD5":
		return digestCheck(md5.New, enc, stored, pass, false)
	case "SMD5":
		return digestCheck(md5.New, enc, stored, pass, true)
	}
	return false, ErrUnknownScheme
}

// digestCheck verifies H(pass) or, salted, H(pass+salt) with the salt appended to the digest.
// Dovecot stores these in base64 unless the scheme says ".HEX"; a hex string of exactly the
// digest's length is taken as hex too, as Dovecot does for the unsalted ones.
func digestCheck(newHash func() hash.Hash, enc, stored, pass string, salted bool) (bool, error) {
	size := newHash().Size()
	raw, err := decodeStored(enc, stored, size)
	if err != nil {
		return false, nil
	}
	if len(raw) < size || (!salted && len(raw) != size) {
		return false, nil
	}
	h := newHash()
	h.Write([]byte(pass))
	h.Write(raw[size:])
	return equal(h.Sum(nil), raw[:size]), nil
}

func decodeStored(enc, stored string, size int) ([]byte, error) {
	switch strings.ToUpper(enc) {
	case "HEX":
		return hex.DecodeString(stored)
	case "B64", "BASE64":
		return base64.StdEncoding.DecodeString(stored)
	}
	if len(stored) == 2*size {
		if b, err := hex.DecodeString(stored); err == nil {
			return b, nil
		}
	}
	return base64.StdEncoding.DecodeString(stored)
}

func equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
