package login

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/netx"
)

// ConnSet is the part of a front-end server every protocol shares: the accept loop, the
// listeners and live connections it tracks, and the two ways of stopping (Close at once,
// Shutdown with a drain). C is the front-end's connection type; the set never looks inside
// it, the front-end says how to start, drain and kick one. The zero value is not usable;
// call NewConnSet.
type ConnSet[C comparable] struct {
	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[C]struct{}
	wg        sync.WaitGroup
	stop      chan struct{}

	limiter *netx.Limiter // nil: no ceilings
	refuse  string        // written to a connection over a ceiling
}

// SetLimiter makes the set admit connections only under l's ceilings,
// answering refused ones with refuse (the protocol's words, with CRLF; ""
// on implicit TLS, which has no words before the handshake). Call it before
// Serve.
func (s *ConnSet[C]) SetLimiter(l *netx.Limiter, refuse string) {
	s.limiter, s.refuse = l, refuse
}

// NewConnSet returns an empty set that accepts connections.
func NewConnSet[C comparable]() *ConnSet[C] {
	return &ConnSet[C]{
		listeners: map[net.Listener]struct{}{},
		conns:     map[C]struct{}{},
		stop:      make(chan struct{}),
	}
}

// Stopping is closed once the set starts closing, so that waits of connections being torn
// down (penalty sleeps) end early.
func (s *ConnSet[C]) Stopping() <-chan struct{} { return s.stop }

// Sleep waits d, a login penalty; false when the set starts closing meanwhile.
func (s *ConnSet[C]) Sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}

// Serve accepts connections on l until l is closed (by the caller, Close or Shutdown), then
// returns nil; other accept errors are returned. Each accepted connection becomes newConn's
// C and runs serve on a worker goroutine (see runWorker), tracked until serve returns.
func (s *ConnSet[C]) Serve(l net.Listener, newConn func(net.Conn) C, serve func(C)) error {
	return s.ServeThen(l, newConn, func(c C) func(func()) { serve(c); return nil })
}

// ServeThen is Serve for a connection handler that may hand the rest of the
// connection's life (a proxied session) to a continuation: serve returns it,
// or nil when the connection is done. The continuation is called with the
// function to call when the session is over, from whichever goroutine ends it;
// the connection stays tracked until then.
func (s *ConnSet[C]) ServeThen(l net.Listener, newConn func(net.Conn) C, serve func(C) func(end func())) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	for {
		nc, err := netx.Accept(l)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		slot, ok := s.limiter.Admit(netx.PeerIP(nc))
		if !ok {
			netx.Refuse(nc, s.refuse)
			continue
		}
		c := newConn(nc)
		if !s.track(c) {
			slot.Release()
			nc.Close()
			continue
		}
		runWorker(func() {
			then := serve(c)
			if then == nil {
				s.forget(c)
				slot.Release()
				s.wg.Done()
				return
			}
			// A proxied session needs no goroutine of its own while it is idle (see Proxy):
			// this worker moves on to the next connection.
			then(func() {
				s.forget(c)
				slot.Release()
				s.wg.Done()
			})
		})
	}
}

// track adds c unless the set is closing; the caller owns a wg slot when it returns true.
func (s *ConnSet[C]) track(c C) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *ConnSet[C]) forget(c C) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// beginClose stops accepting and returns the live connections.
func (s *ConnSet[C]) beginClose() []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		s.closing = true
		close(s.stop)
	}
	for l := range s.listeners {
		l.Close()
	}
	list := make([]C, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	return list
}

// Close stops accepting, calls kick on every live connection and waits for their goroutines
// to end.
func (s *ConnSet[C]) Close(kick func(C)) {
	for _, c := range s.beginClose() {
		kick(c)
	}
	s.wg.Wait()
}

// Shutdown stops accepting, calls drain on every live connection and waits for them to end.
// When ctx ends first, the connections still live are kicked and ctx's error is returned once
// they are gone.
func (s *ConnSet[C]) Shutdown(ctx context.Context, drain, kick func(C)) error {
	for _, c := range s.beginClose() {
		drain(c)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for _, c := range s.beginClose() {
		kick(c)
	}
	<-done
	return ctx.Err()
}
