package passdb

import (
	"crypto/md5"
	"strings"
)

// MD5-crypt ("$1$", Poul-Henning Kamp's FreeBSD scheme, Dovecot's MD5-CRYPT and what glibc's
// crypt(3) does for a "$1$" setting): 1000 rounds of MD5 over the password and a salt of at
// most 8 characters, encoded in the crypt alphabet.

const md5CryptMaxSalt = 8

var md5Order = [][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}}

// md5Crypt computes the full "$1$salt$hash" string for pass with the salt from setting (a
// complete hash or just "$1$salt"). ok is false when setting is not "$1$".
func md5Crypt(pass, setting string) (string, bool) {
	rest, ok := strings.CutPrefix(setting, "$1$")
	if !ok {
		return "", false
	}
	salt, _, _ := strings.Cut(rest, "$")
	if len(salt) > md5CryptMaxSalt {
		salt = salt[:md5CryptMaxSalt]
	}
	p, s := []byte(pass), []byte(salt)

	alt := md5.New()
	alt.Write(p)
	alt.Write(s)
	alt.Write(p)
	altSum := alt.Sum(nil)

	h := md5.New()
	h.Write(p)
	h.Write([]byte("$1$"))
	h.Write(s)
	h.Write(repeatTo(altSum, len(p)))
	// The bits of the password's length pick a zero byte or the password's first byte (the
	// zero is an artefact of the original C code, kept by every implementation).
	for n := len(p); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write([]byte{0})
		} else {
			h.Write(p[:1])
		}
	}
	sum := h.Sum(nil)

	sum = cryptRounds(md5.New, sum, p, s, 1000)

	var b strings.Builder
	b.WriteString("$1$" + salt + "$")
	for _, o := range md5Order {
		encode24(&b, sum[o[0]], sum[o[1]], sum[o[2]], 4)
	}
	encode24(&b, 0, 0, sum[11], 2)
	return b.String(), true
}
