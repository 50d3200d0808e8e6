package login

import (
	"crypto/rand"
	"encoding/base64"
)

// NewSessionID returns a session id shaped like Dovecot's: 12 bytes in base64, 16 characters
// without padding. Dovecot packs time and address bits; random bytes serve the only purpose
// that matters here, being unique across a ring of directors and their backends.
func NewSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return base64.StdEncoding.EncodeToString(b[:])
}
