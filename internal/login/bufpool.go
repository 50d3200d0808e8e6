package login

import (
	"bufio"
	"io"
	"sync"
)

// A login reads and writes through bufio buffers that are dropped once the session is
// relayed: 12 KiB per login, most of a login storm's garbage. They are pooled instead.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
)

// NewReader returns a 4 KiB reader on r from the pool; ReleaseReader gives it back.
func NewReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

// ReleaseReader returns br to the pool; nothing may use it afterwards. nil is ignored.
func ReleaseReader(br *bufio.Reader) {
	if br == nil || br.Size() != 4096 {
		return
	}
	br.Reset(nil)
	readers.Put(br)
}

func newWriter(w io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func releaseWriter(bw *bufio.Writer) {
	if bw == nil || bw.Size() != 4096 {
		return
	}
	bw.Reset(nil)
	writers.Put(bw)
}
