package passdb

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"strconv"
	"strings"
)

// SHA-crypt ("$5$" SHA256-CRYPT, "$6$" SHA512-CRYPT) as specified by Ulrich Drepper's
// public "Unix crypt using SHA-256 and SHA-512" document, which glibc and Dovecot follow.

const (
	shaCryptDefaultRounds = 5000
	shaCryptMinRounds     = 1000
	shaCryptMaxRounds     = 999999999
	shaCryptMaxSalt       = 16
	// maxRoundsAccepted bounds the work one stored hash can demand, so a hostile users file
	// cannot stall logins for minutes.
	maxRoundsAccepted = 10_000_000
)

const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Byte orders of the final encoding: each triple is packed into 24 bits, high byte first.
var (
	sha256Order = [][3]int{{0, 10, 20}, {21, 1, 11}, {12, 22, 2}, {3, 13, 23}, {24, 4, 14},
		{15, 25, 5}, {6, 16, 26}, {27, 7, 17}, {18, 28, 8}, {9, 19, 29}}
	sha512Order = [][3]int{{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4},
		{47, 5, 26}, {6, 27, 48}, {28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10},
		{53, 11, 32}, {12, 33, 54}, {34, 55, 13}, {56, 14, 35}, {15, 36, 57}, {37, 58, 16},
		{59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41}}
)

// shaCrypt computes the full "$5$..." or "$6$..." string for pass with the salt and rounds
// taken from setting (a complete hash or just its "$N$[rounds=R$]salt" prefix). ok is false
// when setting is malformed.
func shaCrypt(pass, setting string) (string, bool) {
	var newHash func() hash.Hash
	var order [][3]int
	var magic string
	switch {
	case strings.HasPrefix(setting, "$5$"):
		newHash, order, magic = sha256.New, sha256Order, "$5$"
	case strings.HasPrefix(setting, "$6$"):
		newHash, order, magic = sha512.New, sha512Order, "$6$"
	default:
		return "", false
	}
	rest := setting[3:]
	rounds, custom := shaCryptDefaultRounds, false
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, after, found := strings.Cut(r, "$")
		n, err := strconv.ParseUint(num, 10, 64)
		if !found || err != nil {
			return "", false
		}
		rounds, custom, rest = int(min(max(n, shaCryptMinRounds), shaCryptMaxRounds)), true, after
		if rounds > maxRoundsAccepted {
			return "", false
		}
	}
	salt, _, _ := strings.Cut(rest, "$")
	if len(salt) > shaCryptMaxSalt {
		salt = salt[:shaCryptMaxSalt]
	}
	sum := shaCryptSum(newHash, []byte(pass), []byte(salt), rounds)

	var b strings.Builder
	b.WriteString(magic)
	if custom {
		b.WriteString("rounds=" + strconv.Itoa(rounds) + "$")
	}
	b.WriteString(salt + "$")
	for _, o := range order {
		encode24(&b, sum[o[0]], sum[o[1]], sum[o[2]], 4)
	}
	if len(sum) == 32 {
		encode24(&b, 0, sum[31], sum[30], 3)
	} else {
		encode24(&b, 0, 0, sum[63], 2)
	}
	return b.String(), true
}

func encode24(b *strings.Builder, b2, b1, b0 byte, n int) {
	w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
	for ; n > 0; n-- {
		b.WriteByte(cryptAlphabet[w&0x3f])
		w >>= 6
	}
}

func shaCryptSum(newHash func() hash.Hash, pass, salt []byte, rounds int) []byte {
	h := newHash()
	h.Write(pass)
	h.Write(salt)
	h.Write(pass)
	alt := h.Sum(nil)

	h = newHash()
	h.Write(pass)
	h.Write(salt)
	h.Write(repeatTo(alt, len(pass)))
	for n := len(pass); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(alt)
		} else {
			h.Write(pass)
		}
	}
	a := h.Sum(nil)

	h = newHash()
	for range len(pass) {
		h.Write(pass)
	}
	p := repeatTo(h.Sum(nil), len(pass))

	h = newHash()
	for range 16 + int(a[0]) {
		h.Write(salt)
	}
	s := repeatTo(h.Sum(nil), len(salt))

	return cryptRounds(newHash, a, p, s, rounds)
}

// cryptRounds is the stretching loop MD5-crypt and SHA-crypt share: each round hashes the
// previous digest c with p (and s every round not divisible by 3, p again every round not
// divisible by 7), in an order that alternates with the round's parity.
func cryptRounds(newHash func() hash.Hash, c, p, s []byte, rounds int) []byte {
	for i := range rounds {
		h := newHash()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(c[:0])
	}
	return c
}

// repeatTo returns the first n bytes of b repeated end to end.
func repeatTo(b []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out
}
