package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"
)

// checkStore reads every page of the raft log database at path before raft
// uses it. bbolt panics on a damaged page (a bad freelist or page type), and
// a panic in raft's own goroutines could not be recovered; here, in the
// opening goroutine, it becomes an error that names the file. Faults on the
// mapped file become panics too (SetPanicOnFault), so they are caught the
// same way.
func checkStore(path string) (err error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s is damaged (%v): restore it from a backup, or move the state directory away to start empty (a director of a ring then rejoins and copies the state)", path, p)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	// A read-write open, like the real one, so the freelist is loaded here.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bbolt.Bucket) error { return walkBucket(b) })
	})
}

// walkBucket visits every key of b and its nested buckets.
func walkBucket(b *bbolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if c := b.Bucket(k); c != nil {
				return walkBucket(c)
			}
		}
		return nil
	})
}
