package lmtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// chunkSize is how much message data is gathered from the client before it goes to the
// backends: large enough for few syscalls, small enough that a slow backend is noticed early.
const chunkSize = 32 << 10

func (c *conn) cmdData() bool {
	tx := c.tx
	switch {
	case tx == nil:
		c.reply("503 5.5.0 MAIL needed first")
		return true
	case tx.dataStarted:
		c.reply("503 5.5.0 Bad sequence of commands")
		return true
	case len(tx.rcpts) == 0:
		c.reply("554 5.5.0 No valid recipients")
		return true
	}
	c.startData(tx)
	c.reply("354 OK")
	if c.flush() != nil {
		return false
	}
	if err := c.readDotData(tx); err != nil {
		// The client is gone mid-message: nothing was acknowledged, the backends drop the
		// partial message when their connection closes.
		c.log.Debug("client failed during DATA", "err", err)
		return false
	}
	c.finishData(tx)
	return true
}

func (c *conn) cmdBDAT(arg string) bool {
	size, last, err := parseBDAT(arg)
	if err != nil {
		// Without a size the chunk cannot be skipped: the stream is out of step for good.
		c.reply("501 5.5.4 Invalid chunk size")
		return false
	}
	tx := c.tx
	var refuse string
	switch {
	case tx == nil:
		refuse = "503 5.5.0 MAIL needed first"
	case len(tx.rcpts) == 0:
		refuse = "554 5.5.0 No valid recipients"
	}
	if refuse != "" {
		if _, err := io.CopyN(io.Discard, c.br, size); err != nil {
			return false
		}
		c.reply(refuse)
		return true
	}
	if !tx.dataStarted {
		c.startData(tx)
	}
	buf := make([]byte, min(size, chunkSize))
	for rest := size; rest > 0; {
		n := min(rest, int64(len(buf)))
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		if _, err := io.ReadFull(c.br, buf[:n]); err != nil {
			c.log.Debug("client failed during BDAT", "err", err)
			return false
		}
		c.feed(tx, buf[:n])
		rest -= n
	}
	if !last {
		if tx.tooBig {
			c.reply(msgTooBig)
			c.endTx()
			return true
		}
		c.reply("250 2.0.0 Added " + strconv.FormatInt(size, 10) + " octets")
		return true
	}
	c.finishData(tx)
	return true
}

// startData sends DATA to every backend with recipients and waits for their 354s. A backend
// that refuses gives its recipients its own reply.
func (c *conn) startData(tx *txn) {
	tx.dataStarted = true
	live := tx.live()
	for _, b := range live {
		_ = b.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.ProxyTimeout))
		b.bw.WriteString("DATA\r\n")
		if err := b.bw.Flush(); err != nil {
			b.fail(err)
		}
	}
	for _, b := range live {
		if !b.ok() {
			continue
		}
		rep, err := b.readReply()
		switch {
		case err != nil:
			b.fail(err)
		case rep.code != 354:
			// A refusal (4xx, 5xx) is the backend's answer for its
			// recipients. Anything else is not: a 250 copied to them would
			// acknowledge a message that was never sent, so they get 451.
			if rep.code >= 400 {
				b.failReply = rep.lines
			}
			b.fail(badReply("DATA: %q", rep.lines[0]))
		}
	}
}

// live lists the backends still able to take the message.
func (tx *txn) live() []*backend {
	var out []*backend
	for _, b := range tx.order {
		if b.ok() && len(b.rcpts) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// readDotData reads the client's dot-terminated message and feeds it, unstuffed, to the
// backends in chunks. Line ends are passed through; dotWriter makes them CRLF.
func (c *conn) readDotData(tx *txn) error {
	return readDot(c.br,
		func() { _ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)) },
		func(p []byte) { c.feed(tx, p) })
}

// readDot reads dot-terminated data from br and hands it, unstuffed, to
// feed in chunks of about chunkSize; before is called before every read.
// Only CRLF ends a line and only CRLF "." CRLF ends the data (RFC 5321
// 4.1.1.4): a bare LF, or "." followed by a bare LF, is message content, so
// no "\n.\n" can end a message early and have what follows taken as
// commands (the SMTP-smuggling class).
func readDot(br *bufio.Reader, before func(), feed func([]byte)) error {
	chunk := make([]byte, 0, chunkSize+4096)
	bol := true     // at the beginning of a line: the data so far ends in CRLF
	lastCR := false // the previous fragment, a piece of a line, ended in '\r'
	for {
		before()
		frag, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		full := err == nil // frag ends in '\n'; otherwise it is a piece of a long line
		if bol && len(frag) > 0 && frag[0] == '.' {
			if full && len(frag) == 3 && frag[1] == '\r' {
				feed(chunk)
				return nil
			}
			frag = frag[1:]
		}
		n := len(frag)
		bol = full && (n >= 2 && frag[n-2] == '\r' || n == 1 && lastCR)
		lastCR = !full && n > 0 && frag[n-1] == '\r'
		chunk = append(chunk, frag...)
		if len(chunk) >= chunkSize {
			feed(chunk)
			chunk = chunk[:0]
		}
	}
}

// feed passes message data to every live backend, enforcing the size limit. Once the limit is
// passed the backends are cut, which makes them discard the partial message.
func (c *conn) feed(tx *txn, p []byte) {
	if tx.tooBig || len(p) == 0 {
		return
	}
	tx.size += int64(len(p))
	if max := c.s.cfg.MaxMessageSize; max > 0 && tx.size > max {
		tx.tooBig = true
		for _, b := range tx.order {
			b.drop()
		}
		return
	}
	for _, b := range tx.live() {
		_ = b.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.ProxyTimeout))
		if err := b.dw.Write(p); err != nil {
			b.fail(err)
		}
	}
}

// finishData ends the message on every backend, collects the per-recipient replies (from all
// backends at once, so the slowest one sets the pace, not their sum) and answers the client
// in RCPT order.
func (c *conn) finishData(tx *txn) {
	if tx.tooBig {
		for range tx.rcpts {
			c.reply(msgTooBig)
		}
		c.endTx()
		return
	}
	live := tx.live()
	for _, b := range live {
		_ = b.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.ProxyTimeout))
		if err := b.dw.Close(); err != nil {
			b.fail(err)
		}
	}
	var wg sync.WaitGroup
	for _, b := range live {
		if !b.ok() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.collect()
		}()
	}
	wg.Wait()
	for _, r := range tx.rcpts {
		if r.reply == nil {
			r.reply = r.be.failedReply(c)
		}
		c.reply(r.reply...)
		c.log.Info("delivery", "user", r.user, "backend", r.be.addr.String(), "reply", r.reply[0])
	}
	c.endTx()
}

// collect reads one reply per recipient, in the order they were given to this backend.
func (b *backend) collect() {
	for _, r := range b.rcpts {
		rep, err := b.readReply()
		if err != nil {
			b.fail(err)
			return
		}
		r.reply = r.clientReply(rep.lines)
	}
	b.dataDone = true
}

// dotWriter writes a message in DATA's form: a '.' doubled at the start of a line, every line
// ending in CRLF (a bare LF becomes CRLF), and the final ".\r\n".
type dotWriter struct {
	w      *bufio.Writer
	midLn  bool // inside a line
	lastCR bool // the last byte written was '\r'
}

func (d *dotWriter) Write(p []byte) error {
	for len(p) > 0 {
		if !d.midLn && p[0] == '.' {
			d.w.WriteByte('.')
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.w.Write(p)
			d.midLn, d.lastCR = true, p[len(p)-1] == '\r'
			break
		}
		d.w.Write(p[:i])
		cr := d.lastCR
		if i > 0 {
			cr = p[i-1] == '\r'
		}
		if !cr {
			d.w.WriteByte('\r')
		}
		d.w.WriteByte('\n')
		d.midLn, d.lastCR = false, false
		p = p[i+1:]
	}
	return d.w.Flush()
}

// Close ends the message (completing a last line without a line end) and flushes.
func (d *dotWriter) Close() error {
	if d.midLn {
		if d.lastCR {
			d.w.WriteByte('\n')
		} else {
			d.w.WriteString("\r\n")
		}
	}
	d.w.WriteString(".\r\n")
	return d.w.Flush()
}

// clientReply is the backend's reply to the data for r in the client's terms: a rewritten
// recipient (destuser=, user=) is named as the client gave it, as Dovecot's LMTP proxy does,
// so the backend's name for the user is not revealed.
func (r *recipient) clientReply(lines []string) []string {
	if r.sent == r.path {
		return lines
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.ReplaceAll(l, "<"+r.sent+">", "<"+r.path+">")
	}
	return out
}
