// Package logsink batches log output: a director logs every login and every session end, and
// one write(2) per line was a measurable share of a login storm's CPU.
package logsink

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// maxPending is how much may wait for the writer before Write waits too: lines are never
// dropped, a stuck output slows logging down instead of growing memory.
const maxPending = 1 << 20

// Writer passes what is written to it on to an underlying writer from a goroutine of its own,
// in one write per batch: a line waits batchWindow for the lines that follow it, and lines
// that come while a batch is being written go out together in the next. At most the lines of
// the last few milliseconds are lost if the process is killed; Close writes out the rest.
type Writer struct {
	out  io.Writer
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	drained *sync.Cond
	buf     []byte // waiting
	spare   []byte // the previous batch's buffer, for reuse
	closed  bool
}

// New starts a Writer on out.
func New(out io.Writer) *Writer {
	w := &Writer{out: out, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.drained = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// Write queues p. After Close it writes p directly.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for len(w.buf) >= maxPending && !w.closed {
		w.drained.Wait()
	}
	if w.closed {
		w.mu.Unlock()
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	select { // under the lock: Close closes wake only after it has seen closed set
	case w.wake <- struct{}{}:
	default:
	}
	w.mu.Unlock()
	return len(p), nil
}

// batchWindow is how long a line waits for others to share its write. Handing each line on
// at once cost a write(2) and a goroutine switch per line: about one per login under load,
// since the logging goroutine soon blocks on the network and lets the writer run.
const batchWindow = 2 * time.Millisecond

func (w *Writer) run() {
	defer close(w.done)
	for range w.wake {
		time.Sleep(batchWindow)
		w.flush()
	}
	w.flush()
}

func (w *Writer) flush() {
	w.mu.Lock()
	b := w.buf
	w.buf = w.spare[:0]
	w.mu.Unlock()
	if len(b) > 0 {
		_, _ = w.out.Write(b)
	}
	w.mu.Lock()
	if cap(b) <= maxPending { // an outsized batch is not kept
		w.spare = b[:0]
	} else {
		w.spare = nil
	}
	w.drained.Broadcast()
	w.mu.Unlock()
}

// Close writes out what is queued and makes later writes go straight through.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.drained.Broadcast()
	w.mu.Unlock()
	close(w.wake)
	<-w.done
	return nil
}

// NewLogger is usher's logger: slog's text format at level, through a Writer on out, which
// the caller closes on the way out.
func NewLogger(out io.Writer, level slog.Level) (*slog.Logger, *Writer) {
	w := New(out)
	return slog.New(&lazyAttrs{root: slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})}), w
}

// lazyAttrs is a handler whose WithAttrs only remembers the attributes: slog's text handler
// formats them at With time, which a director pays for every connection (session, client
// address, user, backend), logged or not. Here they are formatted when a line is logged.
type lazyAttrs struct {
	root  slog.Handler
	attrs []slog.Attr
}

func (h *lazyAttrs) Enabled(ctx context.Context, l slog.Level) bool { return h.root.Enabled(ctx, l) }

func (h *lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	if len(h.attrs) == 0 {
		return h.root.Handle(ctx, r)
	}
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	nr.AddAttrs(h.attrs...)
	r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(a); return true })
	return h.root.Handle(ctx, nr)
}

func (h *lazyAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	all := make([]slog.Attr, 0, len(h.attrs)+len(as))
	return &lazyAttrs{root: h.root, attrs: append(append(all, h.attrs...), as...)}
}

func (h *lazyAttrs) WithGroup(name string) slog.Handler {
	return h.root.WithAttrs(h.attrs).WithGroup(name)
}
