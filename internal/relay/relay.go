package relay

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Session is a relayed session, for ending it from outside.
type Session struct {
	loop    *loopRelay // the event loop's session; nil when goroutines relay it
	backend net.Conn
}

// Start relays client and backend until the session is over, then calls done, once, with the
// byte counts (in: client to backend, out: backend to client). It returns at once. Plain TCP legs
// go to an event loop on Linux, and done then runs on the loop: it must not block. Any other
// pair (a TLS leg, another system) is relayed by goroutines, one of which calls done.
//
// Start never closes the connections; done is the caller's cue to close them. Until then the
// client's leg stays writable for a parting line, even after a Kick.
func Start(client, backend net.Conn, done func(in, out int64)) *Session {
	if r := startLoopRelay(client, backend, done); r != nil {
		return &Session{loop: r, backend: backend}
	}
	go func() { done(relayGoroutines(client, backend)) }()
	return &Session{backend: backend}
}

// Kick ends the session: the backend's leg is shut down at once, the client's keeps its write
// side for the parting line, and done follows once both directions have stopped.
func (s *Session) Kick() {
	if s.loop != nil {
		s.loop.kick()
		return
	}
	_ = s.backend.Close()
}

// relayGoroutines moves bytes between an authenticated client and its backend until both
// directions have ended, and returns the byte counts (in: client to backend, out: backend to
// client).
//
// A clean EOF from the client is passed on as a half-close (CloseWrite), so a client that shuts
// down its sending side still gets the rest of the backend's answer. A clean EOF from the
// backend is passed on the same way and then ends the relay: a mail server that has hung up
// takes no more commands, and the client may never close its side. Any other end (reset,
// closed by a kick, write failure) stops both directions at once by expiring the read
// deadlines rather than closing: the caller may still want to write a last line (IMAP BYE) to
// the client. The connections are left open; the caller closes them.
func relayGoroutines(client, backend net.Conn) (in, out int64) {
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

// copyConn hands both TCP legs to spliceConn, so bulk data takes the splice path; a wrapped
// conn (TLS) goes through io.Copy's single reusable buffer.
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

// Handoff passes on what the pre-login readers still hold when a session turns into a relay:
// commands the client pipelined behind its login go to the backend, whatever the backend sent
// behind its OK goes to the client. The counts (in: to the backend, out: to the client) add
// to the relay's. Both readers go back to the pool (see NewReader): nothing may use them
// afterwards. Write errors are left to the relay, which meets the same connections next.
func Handoff(client net.Conn, clientBuf *bufio.Reader, backend net.Conn, backendBuf *bufio.Reader) (in, out int64) {
	in, out = passOn(clientBuf, backend), passOn(backendBuf, client)
	releaseReader(clientBuf)
	releaseReader(backendBuf)
	return in, out
}

func passOn(from *bufio.Reader, to net.Conn) int64 {
	n := from.Buffered()
	if n == 0 {
		return 0
	}
	b, _ := from.Peek(n)
	m, _ := to.Write(b)
	return int64(m)
}

// A login reads and writes through bufio buffers that are dropped once the session is
// relayed: 12 KiB per login, most of a login storm's garbage. They are pooled instead, and
// the hand-off to the relay is where the readers come back.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
)

// NewReader returns a 4 KiB reader on r from the pool; Handoff gives it back. A reader that
// is never handed off is simply left to the garbage collector.
func NewReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func releaseReader(br *bufio.Reader) {
	if br == nil || br.Size() != 4096 {
		return
	}
	br.Reset(nil)
	readers.Put(br)
}

// NewWriter returns a 4 KiB writer on w from the pool; ReleaseWriter gives it back.
func NewWriter(w io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

// ReleaseWriter returns bw to the pool; nothing may use it afterwards. nil is ignored.
func ReleaseWriter(bw *bufio.Writer) {
	if bw == nil || bw.Size() != 4096 {
		return
	}
	bw.Reset(nil)
	writers.Put(bw)
}
