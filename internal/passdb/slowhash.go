package passdb

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrTooCostly means a stored hash demands more work than usher accepts for one login (a
// hostile or mistaken users file must not stall logins or exhaust memory); like an unknown
// scheme it fails the login as a temporary error.
var ErrTooCostly = errors.New("password hash needs too much work to check")

// Work limits per check, far above what `doveadm pw` writes (bcrypt cost 5, PBKDF2 5000
// rounds, Argon2 64 MiB x 3 passes). Variables so the fuzz targets can lower them.
var (
	maxBcryptCost   = 16
	maxPBKDF2Rounds = maxRoundsAccepted
	maxArgon2MemKiB = uint32(1 << 20) // 1 GiB
	maxArgon2Passes = uint32(64)
)

// bcryptLimit is the longest password bcrypt reads: crypt_blowfish, which Dovecot's
// BLF-CRYPT uses, ignores the bytes after it.
const bcryptLimit = 72

// bcryptCheck verifies a "$2a$", "$2b$" or "$2y$" hash (BLF-CRYPT). The library compares in
// constant time.
func bcryptCheck(stored, pass string) (bool, error) {
	cost, err := bcrypt.Cost([]byte(stored))
	if err != nil {
		return false, nil
	}
	if cost > maxBcryptCost {
		return false, ErrTooCostly
	}
	if len(pass) > bcryptLimit {
		pass = pass[:bcryptLimit]
	}
	return bcrypt.CompareHashAndPassword([]byte(stored), []byte(pass)) == nil, nil
}

// pbkdf2Check verifies Dovecot's PBKDF2: "$1$<salt>$<rounds>$<hex key>", PBKDF2-HMAC-SHA1
// over the salt's text, the key as long as the hex says (Dovecot writes 20 bytes).
func pbkdf2Check(stored, pass string) (bool, error) {
	f := strings.Split(stored, "$")
	if len(f) != 5 || f[0] != "" || f[1] != "1" {
		return false, nil
	}
	rounds, err := strconv.Atoi(f[3])
	want, herr := hex.DecodeString(f[4])
	if err != nil || rounds < 1 || herr != nil || len(want) == 0 || len(want) > 64 {
		return false, nil
	}
	if rounds > maxPBKDF2Rounds {
		return false, ErrTooCostly
	}
	got, err := pbkdf2.Key(sha1.New, pass, []byte(f[2]), rounds, len(want))
	return err == nil && equal(got, want), nil
}

// argon2Check verifies a libsodium/PHC string "$argon2id$v=19$m=K,t=T,p=P$salt$hash"
// (ARGON2ID) or "$argon2i$..." (ARGON2I), salt and hash in unpadded base64.
func argon2Check(stored, pass string) (bool, error) {
	f := strings.Split(stored, "$")
	if len(f) != 6 || f[0] != "" || f[2] != "v=19" {
		return false, nil
	}
	var key func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
	switch f[1] {
	case "argon2id":
		key = argon2.IDKey
	case "argon2i":
		key = argon2.Key
	default:
		return false, nil
	}
	var m, t, p uint64
	for _, kv := range strings.Split(f[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return false, nil
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			p = n
		default:
			return false, nil
		}
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(f[4])
	want, err2 := base64.RawStdEncoding.DecodeString(f[5])
	if err1 != nil || err2 != nil || len(want) < 4 || len(want) > 64 || t < 1 || p < 1 || p > 255 || m < 8*p {
		return false, nil
	}
	if m > uint64(maxArgon2MemKiB) || t > uint64(maxArgon2Passes) {
		return false, ErrTooCostly
	}
	got := key([]byte(pass), salt, uint32(t), uint32(m), uint8(p), uint32(len(want)))
	return equal(got, want), nil
}
