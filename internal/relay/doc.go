// Package relay carries a proxied session's bytes once the backend has accepted the login:
// client to backend and back, until either side ends or the session is kicked.
//
// The API is what a front-end needs at the hand-off and nothing more: NewReader and NewWriter
// give the login its pooled buffers, Handoff passes on what those buffers still hold (commands
// pipelined behind the login, whatever the backend sent behind its OK) and takes the readers
// back, Start relays the two sockets and calls done when the session is over, and
// Session.Kick ends it from outside.
//
// # Design
//
// A proxied session spends nearly all its life idle: a mail client in IDLE, a phone holding
// its connection. With a goroutine per direction, each idle session would keep two goroutine
// stacks (4 to 16 KiB between them) just to wait. When both legs are plain TCP on Linux, Start gives the session to one of
// the event loops (evloop_linux.go, one per GOMAXPROCS, started on first use): an epoll set
// of usher's own, itself waited on through Go's poller (a loop with nothing to do is a
// parked goroutine, not a blocked thread), so an idle session costs its two
// sockets and a few hundred bytes of bookkeeping, and no goroutine at all. A short burst (a
// command, an answer) is read and written by the loop itself. A burst that fills the loop's
// 16 KiB buffer (a message being fetched or appended) or a receiver that cannot take it yet
// hands that direction to a goroutine, which splices (splice(2): the payload never enters
// user space) while the bulk lasts and gives the direction back once the source has been
// quiet for 25 ms.
//
// The sockets stay owned by Go's net package: every system call the loop makes on one goes
// through RawConn.Control, which holds a reference on the descriptor, so a concurrent close
// can never make the loop touch a reused descriptor number.
//
// A kick shuts the backend socket down, which the loop sees as the backend's end; the
// client keeps its write side for the parting line. The backend's end ends the session, and
// closing the client's socket (the caller's, in done) is what passes it on: no shutdown(2)
// first, the FIN is the same. The client's end is passed to the backend as a half-close, so
// the backend's answer still flows.
//
// A TLS leg, and every session on systems other than Linux, is relayed by two goroutines
// (relay.go) with the same ends (a kick closes the backend socket): spliced between plain
// TCP legs, through io.Copy's buffer otherwise.
//
// # Locks
//
// The order of every lock this package and package login take is written down in
// internal/login/locksordering.txt. Here: evLoop.mu and loopRelay.mu are leaves, never held
// together, and no lock of this package is held while done runs.
package relay
