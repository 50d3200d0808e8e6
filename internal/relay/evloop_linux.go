package relay

import (
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The event loops of the package doc (doc.go says why they exist and what they guarantee):
// each loop waits on its epoll set, moves one short burst at a time itself (burst, move) and
// hands a long one to a goroutine (carry), which gives the direction back when it is quiet.

// loopRelay is a session relayed by an event loop.
type loopRelay struct {
	loop *evLoop
	done func(in, out int64)

	mu      sync.Mutex
	dirs    [2]loopDir // toBackend, toClient
	ended   bool
	busy    int // directions running on a goroutine
	aborted atomic.Bool
}

const (
	toBackend = 0
	toClient  = 1
)

// loopDir is one direction of a relayed session.
type loopDir struct {
	r            *loopRelay
	id           uint64 // in the epoll event's data
	which        int
	src, dst     *net.TCPConn
	srcRC, dstRC syscall.RawConn
	n            int64
	eof          bool // src ended cleanly
	goroutine    bool // a goroutine carries this direction now; the loop ignores it
}

type evLoop struct {
	epfd int
	rc   syscall.RawConn // the epoll descriptor, for waiting through Go's poller
	buf  []byte          // the loop's own: it runs one burst at a time

	// The loop's system calls, built once: a closure made per call would escape to the heap
	// through RawConn.Control, an allocation per burst. ioN and ioErr carry the results.
	readFn, writeFn func(fd uintptr)
	ioN             int
	ioErr           error
	ioLen           int // how much of buf writeFn writes

	mu     sync.Mutex
	dirs   map[uint64]*loopDir
	nextID uint64
}

var loops struct {
	once sync.Once
	all  []*evLoop
	next atomic.Uint32
}

// pickLoop returns an event loop (one per GOMAXPROCS, started on first use, in turn), or nil
// when none could be started; the caller then relays with goroutines.
func pickLoop() *evLoop {
	loops.once.Do(func() {
		for range runtime.GOMAXPROCS(0) {
			l, err := newEvLoop()
			if err != nil {
				break
			}
			loops.all = append(loops.all, l)
			go l.run()
		}
	})
	if len(loops.all) == 0 {
		return nil
	}
	return loops.all[int(loops.next.Add(1))%len(loops.all)]
}

func newEvLoop() (*evLoop, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// os.NewFile registers a non-blocking descriptor with Go's poller; an epoll set is
	// readable when it has events.
	f := os.NewFile(uintptr(fd), "usher-relay-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &evLoop{epfd: fd, rc: rc, buf: make([]byte, smallBurst), dirs: map[uint64]*loopDir{}}
	l.readFn = func(fd uintptr) { l.ioN, l.ioErr = readNoEINTR(int(fd), l.buf) }
	l.writeFn = func(fd uintptr) { l.ioN, l.ioErr = writeNoEINTR(int(fd), l.buf[:l.ioLen]) }
	return l, nil
}

func (l *evLoop) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		err := l.rc.Read(func(fd uintptr) bool {
			var werr error
			n, werr = unix.EpollWait(int(fd), events, 0)
			return werr == nil && n > 0
		})
		if err != nil {
			return // the epoll descriptor is never closed; nothing else ends a loop
		}
		for i := range events[:n] {
			l.mu.Lock()
			d := l.dirs[uint64(uint32(events[i].Fd))|uint64(uint32(events[i].Pad))<<32]
			l.mu.Unlock()
			if d != nil {
				l.burst(d, events[i].Events)
			}
		}
	}
}

// startLoopRelay relays client and backend on an event loop and calls done from the loop (or
// from the goroutine that ended the session) once both directions are over. It returns nil,
// having started nothing, when the connections are not plain TCP or no loop is running.
func startLoopRelay(client, backend net.Conn, done func(in, out int64)) *loopRelay {
	c, ok1 := client.(*net.TCPConn)
	b, ok2 := backend.(*net.TCPConn)
	if !ok1 || !ok2 {
		return nil
	}
	l := pickLoop()
	if l == nil {
		return nil
	}
	crc, err1 := c.SyscallConn()
	brc, err2 := b.SyscallConn()
	if err1 != nil || err2 != nil {
		return nil
	}
	// Registration holds the session open (busy) until both directions are watched.
	r := &loopRelay{loop: l, done: done, busy: 1}
	r.dirs[toBackend] = loopDir{r: r, which: toBackend, src: c, dst: b, srcRC: crc, dstRC: brc}
	r.dirs[toClient] = loopDir{r: r, which: toClient, src: b, dst: c, srcRC: brc, dstRC: crc}
	l.mu.Lock()
	for i := range r.dirs {
		l.nextID++
		r.dirs[i].id = l.nextID
		l.dirs[l.nextID] = &r.dirs[i]
	}
	l.mu.Unlock()
	if err := l.watch(&r.dirs[toBackend], unix.EPOLL_CTL_ADD); err != nil {
		l.forget(r) // nothing was watched: the caller relays another way
		return nil
	}
	// From here on the loop may serve the client's direction. A backend that cannot be
	// watched now was closed under us (a kick): the session ends.
	if err := l.watch(&r.dirs[toClient], unix.EPOLL_CTL_ADD); err != nil {
		r.end()
	}
	r.release()
	return r
}

// watch adds (or re-adds) d's source to the loop's set, edge-triggered: each arrival of data
// is one event, and a burst read short of the buffer has drained the socket.
func (l *evLoop) watch(d *loopDir, op int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(uint32(d.id)), Pad: int32(uint32(d.id >> 32))}
	var err error
	cerr := d.srcRC.Control(func(fd uintptr) { err = unix.EpollCtl(l.epfd, op, int(fd), &ev) })
	if cerr != nil {
		return cerr
	}
	return err
}

func (l *evLoop) unwatch(d *loopDir) {
	_ = d.srcRC.Control(func(fd uintptr) { _ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
}

func (l *evLoop) forget(r *loopRelay) {
	l.mu.Lock()
	for i := range r.dirs {
		delete(l.dirs, r.dirs[i].id)
	}
	l.mu.Unlock()
}

// burst moves what d's source has to its destination. Called on the loop only.
func (l *evLoop) burst(d *loopDir, events uint32) {
	r := d.r
	if !r.acquire(d) {
		return
	}
	// Edge-triggered: the peer's end that came with the data raises no second event, so
	// when the event reports it, read on until the end is seen.
	hup := events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	for {
		handed, more := l.move(d)
		if handed {
			return
		}
		if !more || !hup {
			break
		}
	}
	r.release()
}

// acquire marks a worker (the loop, or a goroutine) busy with d: the session cannot complete,
// and so its connections cannot be written by anyone else, until release. False when d is not
// the loop's to serve.
func (r *loopRelay) acquire(d *loopDir) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || d.goroutine || d.eof {
		return false
	}
	r.busy++
	return true
}

func (r *loopRelay) release() {
	r.mu.Lock()
	r.busy--
	r.mu.Unlock()
	r.maybeComplete()
}

// move does one burst; handed reports that a goroutine took over d (and the busy mark), more
// that the burst was passed on whole and the source may have more (its end, say).
func (l *evLoop) move(d *loopDir) (handed, more bool) {
	r := d.r
	if r.aborted.Load() {
		r.end()
		return false, false
	}
	if err := d.srcRC.Control(l.readFn); err != nil {
		r.end()
		return false, false
	}
	n, rerr := l.ioN, l.ioErr
	switch {
	case rerr == unix.EAGAIN:
		return false, false // an edge for data already taken
	case rerr != nil:
		r.end()
		return false, false
	case n == 0:
		r.srcEOF(d)
		return false, false
	}
	l.ioLen = n
	if err := d.dstRC.Control(l.writeFn); err != nil {
		r.end()
		return false, false
	}
	w, werr := l.ioN, l.ioErr
	if werr != nil && werr != unix.EAGAIN {
		r.end()
		return false, false
	}
	d.n += int64(w)
	if w == n && n < len(l.buf) {
		return false, true
	}
	// The receiver is behind, or bulk data is flowing: a goroutine takes this direction.
	bp := smallBufs.Get().(*[]byte)
	pending := (*bp)[:copy(*bp, l.buf[w:n])]
	l.unwatch(d)
	r.mu.Lock()
	d.goroutine = true
	r.mu.Unlock()
	go d.carry(bp, pending, n == len(l.buf))
	return true, false
}

// carry runs d on a goroutine: it writes what the loop could not, relays until a burst is
// short again, and gives the direction back to the loop.
func (d *loopDir) carry(bp *[]byte, pending []byte, bulk bool) {
	r := d.r
	var err error
	if len(pending) > 0 {
		var w int
		w, err = d.dst.Write(pending)
		d.n += int64(w)
	}
	smallBufs.Put(bp)
	eof := false
	if err == nil {
		var m int64
		m, eof, err = relayBursts(d.dst, d.src, true, bulk)
		d.n += m
	}
	r.mu.Lock()
	d.goroutine = false
	ended := r.ended
	r.mu.Unlock()
	switch {
	case ended:
	case err != nil:
		r.end()
	case eof:
		r.srcEOF(d)
	default:
		if r.loop.watch(d, unix.EPOLL_CTL_ADD) != nil {
			r.end()
		}
	}
	r.release()
}

// srcEOF handles a clean end of d's source. The client's end is passed to the backend as a
// half-close and the backend's answer still flows; the backend's end is passed on the same
// way and ends the session (a mail server that hung up takes no more commands).
func (r *loopRelay) srcEOF(d *loopDir) {
	r.mu.Lock()
	d.eof = true
	both := r.dirs[toBackend].eof && r.dirs[toClient].eof
	r.mu.Unlock()
	if d.which == toClient && r.aborted.Load() {
		r.end() // a kick: the client still gets its parting line, so no half-close
		return
	}
	// The backend's end ends the session, and closing the client's socket sends the FIN a
	// half-close would: no shutdown(2) first.
	if d.which == toClient || both || d.dst.CloseWrite() != nil {
		r.end()
	}
}

// end stops the session: a direction on a goroutine is interrupted through deadlines, and
// done runs once every worker has let go of the connections.
func (r *loopRelay) end() {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	r.ended = true
	for i := range r.dirs {
		if r.dirs[i].goroutine {
			past := time.Unix(1, 0)
			_ = r.dirs[i].src.SetDeadline(past)
			_ = r.dirs[i].dst.SetDeadline(past)
		}
	}
	r.mu.Unlock()
	r.maybeComplete()
}

func (r *loopRelay) maybeComplete() {
	r.mu.Lock()
	last := r.ended && r.busy == 0
	if last {
		r.busy = -1 // complete once
	}
	r.mu.Unlock()
	if !last {
		return
	}
	// The sockets leave the epoll set when they are closed, right after done; events until
	// then find no session.
	r.loop.forget(r)
	r.done(r.dirs[toBackend].n, r.dirs[toClient].n)
}

// kick ends the session from outside (a kick, a shutdown). The backend connection is shut
// down at once; the client keeps its write side for the parting line.
func (r *loopRelay) kick() {
	r.aborted.Store(true)
	_ = r.dirs[toClient].srcRC.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	r.end()
}

func readNoEINTR(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

func writeNoEINTR(fd int, b []byte) (int, error) {
	w := 0
	for w < len(b) {
		n, err := unix.Write(fd, b[w:])
		if n > 0 {
			w += n
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return w, err
		}
	}
	return w, nil
}
