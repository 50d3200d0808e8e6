package ring

import (
	"bytes"
	"io"
	"testing"
)

// rw reads the fuzz input and discards what the handshake writes.
type rw struct{ r io.Reader }

func (x rw) Read(b []byte) (int, error)  { return x.r.Read(b) }
func (x rw) Write(b []byte) (int, error) { return len(b), nil }

// FuzzServerHandshake: no input from an unauthenticated peer may crash the
// listener or pass authentication.
func FuzzServerHandshake(f *testing.F) {
	f.Add([]byte(handshakeMagic + string(make([]byte, nonceLen)) + "\x0e127.0.0.1:9090" + string(make([]byte, macLen)) + "R"))
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := serverHandshake(rw{bytes.NewReader(data)}, []byte("secret")); err == nil {
			t.Fatal("random bytes passed authentication")
		}
	})
}

// FuzzReadFrame: frames never allocate beyond their limit or panic, and
// what writeFrame writes reads back.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := readFrame(bytes.NewReader(data))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := writeFrame(&out, b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data[:4+len(b)]) {
			t.Fatal("frame does not round-trip")
		}
	})
}
