package login

import "time"

// Connection handlers run on workers: goroutines that serve one connection after another.
// A login runs deep (the protocol's parser, the router, the backend dial) and a fresh
// goroutine grows its stack there several times, copying it each time; a worker that served
// a login before already has the stack. A worker with nothing to do for workerIdle ends, so
// a burst of logins leaves no goroutines behind for long.
var workQueue = make(chan func())

const workerIdle = 10 * time.Second

// runWorker runs f on an idle worker, or on a new one when none is waiting.
func runWorker(f func()) {
	select {
	case workQueue <- f:
	default:
		go worker(f)
	}
}

func worker(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil // hold nothing of the last connection while waiting
		idle.Reset(workerIdle)
		select {
		case f = <-workQueue:
		case <-idle.C:
			return
		}
	}
}
