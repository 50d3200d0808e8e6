package login

import (
	"io"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// spliceConn moves bytes from src to dst with splice(2), one burst at a time.
//
// A plain io.Copy between two TCP connections also splices, but it holds a
// kernel pipe (two file descriptors) for as long as the copy runs, which for
// a proxied mail session is its whole idle life: six descriptors per session
// instead of two, and a director runs out of descriptors long before memory.
// Here the copy first waits, holding nothing, until src is readable, asks
// the kernel how many bytes are queued, and splices exactly that many: the
// pipe goes back to the runtime's pool after every burst.
func spliceConn(dst, src *net.TCPConn) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return io.Copy(dst, src)
	}
	var total int64
	for {
		queued, err := waitQueued(rc)
		if err != nil {
			return total, err
		}
		if queued == 0 {
			// Readable with nothing queued: end of stream or an error. A
			// one-byte read tells which (and takes that byte if one raced in).
			var b [1]byte
			n, err := src.Read(b[:])
			if n > 0 {
				if _, werr := dst.Write(b[:n]); werr != nil {
					return total, werr
				}
				total += int64(n)
				continue
			}
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		var n int64
		if queued <= smallBurst {
			n, err = copySmall(dst, src, queued)
		} else {
			n, err = io.Copy(dst, &io.LimitedReader{R: src, N: int64(queued)})
		}
		total += n
		if err != nil {
			return total, err
		}
	}
}

// smallBurst is where splicing stops paying: an IMAP command or a short
// answer costs two splices plus a pipe from the pool, against one read and
// one write of a few bytes through a pooled buffer. Bulk data (FETCH of a
// message, APPEND) still splices.
const smallBurst = 16 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBurst); return &b }}

func copySmall(dst, src *net.TCPConn, queued int) (int64, error) {
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	n, err := io.ReadFull(src, (*bp)[:queued])
	if n > 0 {
		if _, werr := dst.Write((*bp)[:n]); werr != nil {
			return 0, werr
		}
	}
	if err == io.ErrUnexpectedEOF {
		err = nil // fewer bytes than queued cannot happen; if it does, go round again
	}
	return int64(n), err
}

// waitQueued blocks until the socket is readable and returns how many bytes
// the kernel holds for it (FIONREAD); 0 means end of stream or an error.
func waitQueued(rc interface {
	Read(func(fd uintptr) bool) error
}) (int, error) {
	var queued int
	var ioErr error
	err := rc.Read(func(fd uintptr) bool {
		queued, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD: bytes queued
		if ioErr != nil || queued > 0 {
			return true
		}
		// Nothing queued: readable anyway means EOF or a pending error. The
		// runtime's poller is edge-triggered and may have seen that edge
		// already, so ask the kernel directly instead of waiting for it.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		n, perr := unix.Poll(fds, 0)
		for perr == unix.EINTR {
			n, perr = unix.Poll(fds, 0)
		}
		return perr == nil && n > 0
	})
	if err != nil {
		return 0, err
	}
	return queued, ioErr
}
