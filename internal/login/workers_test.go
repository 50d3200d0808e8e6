package login

import (
	"sync"
	"testing"
	"time"
)

// Busy workers never hold up a new connection: each job that finds no idle worker gets one of
// its own, so jobs that wait for each other all run.
func TestRunWorkerNeverWaitsForABusyWorker(t *testing.T) {
	const n = 20
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	for range n {
		runWorker(func() {
			started.Done()
			<-release
		})
	}
	waited := make(chan struct{})
	go func() { started.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("jobs did not all run at once")
	}
	close(release)
	// a job after them still runs, on a worker now idle or a new one
	ran := make(chan struct{})
	runWorker(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("a job after the others did not run")
	}
}
