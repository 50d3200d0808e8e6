package login

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Relay moves bytes between an authenticated client and its backend until both directions have
// ended, and returns the byte counts (in: client to backend, out: backend to client).
//
// A clean EOF from the client is passed on as a half-close (CloseWrite), so a client that shuts
// down its sending side still gets the rest of the backend's answer. A clean EOF from the
// backend is passed on the same way and then ends the relay: a mail server that has hung up
// takes no more commands, and the client may never close its side. Any other end (reset,
// closed by a kick, write failure) stops both directions at once by expiring the read
// deadlines rather than closing: the caller may still want to write a last line (IMAP BYE) to
// the client. Relay never closes the connections; the caller does.
//
// When both legs are plain *net.TCPConn, io.Copy reaches TCPConn.ReadFrom, which uses splice(2)
// on Linux: the payload never enters user space.
func Relay(client, backend net.Conn) (in, out int64) {
	var wg sync.WaitGroup
	var once sync.Once
	abort := func() {
		once.Do(func() {
			past := time.Unix(1, 0)
			_ = client.SetReadDeadline(past)
			_ = backend.SetReadDeadline(past)
		})
	}
	pipe := func(dst, src net.Conn, n *int64, lastWord bool) {
		defer wg.Done()
		var err error
		*n, err = copyConn(dst, src)
		if err == nil {
			cw, ok := dst.(interface{ CloseWrite() error })
			if ok && cw.CloseWrite() == nil && !lastWord {
				return
			}
		}
		abort()
	}
	wg.Add(2)
	go pipe(backend, client, &in, false)
	// The caller's goroutine carries the other direction: one goroutine
	// stack less per idle session.
	pipe(client, backend, &out, true)
	wg.Wait()
	return in, out
}

// copyConn hands io.Copy the concrete TCP types when it can, so the splice path is taken; a
// wrapped conn (TLS) goes through io.Copy's single reusable buffer.
func copyConn(dst, src net.Conn) (int64, error) {
	if d, ok := dst.(*net.TCPConn); ok {
		if s, ok := src.(*net.TCPConn); ok {
			return spliceConn(d, s)
		}
	}
	n, err := io.Copy(dst, src)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}
