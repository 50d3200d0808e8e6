// Package netx holds the network helpers every server of usher shares.
package netx

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// Accept waits for the next connection on l. Errors that pass (out of file
// descriptors, an aborted handshake, a timeout) are waited out with a
// growing pause, as net/http does, instead of ending the listener: a
// director that hit its descriptor limit must serve again once sessions
// end. It returns the error only for a closed listener or one that cannot
// accept at all.
func Accept(l net.Listener) (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.Accept()
		if err == nil {
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) || !passing(err) {
			return nil, err
		}
		pause = min(max(2*pause, 5*time.Millisecond), time.Second)
		time.Sleep(pause)
	}
}

func passing(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.EINTR)
}
