package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spliceConn moves bytes from src to dst: short bursts through a pooled buffer, bulk with
// splice(2).
//
// A plain io.Copy between two TCP connections also splices, but it holds a kernel pipe (two
// file descriptors) for as long as the copy runs, which for a proxied mail session is its
// whole idle life: six descriptors per session instead of two, and a director runs out of
// descriptors long before memory. A plain Read would hold its buffer for the session's idle
// life instead. Here the copy waits for src, holding nothing, and only then takes a buffer
// from the pool and reads: one read(2) per burst when data is there, as cheap as Go's own
// Read. A burst that fills the buffer means bulk data is flowing (a FETCH of a message, an
// APPEND); from then on the copy asks the kernel how much is queued (FIONREAD) and splices
// large amounts without copying them through user space, until a burst is short again.
func spliceConn(dst, src *net.TCPConn) (int64, error) {
	n, _, err := relayBursts(dst, src, false, false)
	return n, err
}

// quietAfter is how long a direction carried by a goroutine waits for more data before it
// goes back to its event loop: a stream that pauses between bursts (a FETCH of many messages)
// keeps its goroutine instead of bouncing between the loop and a new goroutine per burst.
const quietAfter = 25 * time.Millisecond

// relayBursts copies src to dst, burst by burst, until src ends (eof) or fails, or with
// untilQuiet once src has had nothing for quietAfter (err nil, eof false). bulk says the copy
// starts in the middle of bulk data.
func relayBursts(dst, src *net.TCPConn, untilQuiet, bulk bool) (total int64, eof bool, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		n, err := io.Copy(dst, src)
		return n, err == nil, err
	}
	for {
		if untilQuiet {
			_ = src.SetReadDeadline(time.Now().Add(quietAfter))
		}
		bp, n, queued, err := readBurst(rc, bulk)
		if err == io.EOF {
			return total, true, nil
		}
		if untilQuiet && errors.Is(err, os.ErrDeadlineExceeded) {
			_ = src.SetReadDeadline(time.Time{})
			return total, false, nil // quiet (or ended by a past deadline: the caller knows)
		}
		if err != nil {
			return total, false, err
		}
		if untilQuiet { // the deadline bounds the wait, not the copy that follows
			_ = src.SetReadDeadline(time.Time{})
		}
		if queued > 0 {
			m, err := io.Copy(dst, &io.LimitedReader{R: src, N: int64(queued)})
			total += m
			if err != nil {
				return total, false, err
			}
			continue
		}
		_, werr := dst.Write((*bp)[:n])
		smallBufs.Put(bp)
		if werr != nil {
			return total, false, werr
		}
		total += int64(n)
		bulk = n == smallBurst
	}
}

// smallBurst is the pooled buffer's size and where splicing starts to pay: an IMAP command
// or a short answer costs one read and one write here, against two splices and a pipe from
// the pool.
const smallBurst = 16 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBurst); return &b }}

// readBurst waits until src is readable and reads what is there into a pooled buffer, which
// the caller returns to smallBufs. With bulk set it first asks how much is queued, and when
// that is more than a buffer it reads nothing and returns the amount for the caller to
// splice. io.EOF is the peer's clean end.
func readBurst(rc syscall.RawConn, bulk bool) (bp *[]byte, n, queued int, err error) {
	var rerr error
	werr := rc.Read(func(fd uintptr) bool {
		if bulk {
			if q, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil && q > smallBurst {
				queued = q
				return true
			}
		}
		b := smallBufs.Get().(*[]byte)
		for {
			n, rerr = unix.Read(int(fd), *b)
			if rerr != unix.EINTR {
				break
			}
		}
		if rerr == unix.EAGAIN {
			smallBufs.Put(b)
			return false // wait for the poller, holding nothing
		}
		bp = b
		return true
	})
	switch {
	case werr != nil: // deadline (a kick or abort) or closed
		err = werr
	case queued > 0:
		return nil, 0, queued, nil
	case rerr != nil:
		err = os.NewSyscallError("read", rerr)
	case n <= 0:
		err = io.EOF
	default:
		return bp, n, 0, nil
	}
	if bp != nil {
		smallBufs.Put(bp)
	}
	return nil, 0, 0, err
}
