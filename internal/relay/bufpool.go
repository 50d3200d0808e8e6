package relay

import (
	"bufio"
	"io"
	"sync"
)

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
