package ring

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// Handshake at the start of every ring connection, after TLS if any. It
// proves to each side that the other knows the ring secret, without sending
// it:
//
//	dialer   -> listener: magic, nonce D (32), len(addr) (1), addr
//	listener -> dialer:   nonce L (32), HMAC(secret, "L" D L addr)
//	dialer   -> listener: HMAC(secret, "D" D L addr), protocol byte
//
// The role letter stops a listener's proof from being reflected back as a
// dialer's. addr is the dialer's own ring address, which names it in the
// per-peer counters.
const (
	handshakeMagic = "USHRRNG1"
	nonceLen       = 32
	macLen         = sha256.Size
)

// Protocol bytes after the handshake.
const (
	protoRaft = 'R'
	protoRPC  = 'C'
)

var errAuth = errors.New("ring: peer failed authentication (director_ring_secret differs?)")

func ringMAC(secret []byte, role byte, d, l []byte, addr string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte{role})
	m.Write(d)
	m.Write(l)
	m.Write([]byte(addr))
	return m.Sum(nil)
}

// clientHandshake runs the dialer's side and selects the protocol.
func clientHandshake(rw io.ReadWriter, secret []byte, self string, proto byte) error {
	if len(self) > 255 {
		return fmt.Errorf("ring: address too long: %q", self)
	}
	d := make([]byte, nonceLen)
	rand.Read(d)
	msg := append([]byte(handshakeMagic), d...)
	msg = append(msg, byte(len(self)))
	msg = append(msg, self...)
	if _, err := rw.Write(msg); err != nil {
		return err
	}
	in := make([]byte, nonceLen+macLen)
	if _, err := io.ReadFull(rw, in); err != nil {
		return err
	}
	l, mac := in[:nonceLen], in[nonceLen:]
	if !hmac.Equal(mac, ringMAC(secret, 'L', d, l, self)) {
		return errAuth
	}
	_, err := rw.Write(append(ringMAC(secret, 'D', d, l, self), proto))
	return err
}

// serverHandshake runs the listener's side and returns the dialer's
// address and chosen protocol.
func serverHandshake(rw io.ReadWriter, secret []byte) (peer string, proto byte, err error) {
	head := make([]byte, len(handshakeMagic)+nonceLen+1)
	if _, err := io.ReadFull(rw, head); err != nil {
		return "", 0, err
	}
	if string(head[:len(handshakeMagic)]) != handshakeMagic {
		return "", 0, errors.New("ring: not a ring connection")
	}
	d := head[len(handshakeMagic) : len(handshakeMagic)+nonceLen]
	addr := make([]byte, head[len(head)-1])
	if _, err := io.ReadFull(rw, addr); err != nil {
		return "", 0, err
	}
	peer = string(addr)
	l := make([]byte, nonceLen)
	rand.Read(l)
	if _, err := rw.Write(append(l, ringMAC(secret, 'L', d, l, peer)...)); err != nil {
		return "", 0, err
	}
	in := make([]byte, macLen+1)
	if _, err := io.ReadFull(rw, in); err != nil {
		return "", 0, err
	}
	if !hmac.Equal(in[:macLen], ringMAC(secret, 'D', d, l, peer)) {
		return "", 0, errAuth
	}
	return peer, in[macLen], nil
}
