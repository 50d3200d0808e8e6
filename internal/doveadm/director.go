package doveadm

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usher-mail/usher/internal/tabescape"
)

// adminTimeout bounds one director-admin exchange: ring-sync commands may wait up to 30 s
// for the ring before answering (reference 4.7), so leave room beyond that.
const adminTimeout = 45 * time.Second

// adminConn is a doveadm-side director-admin connection.
type adminConn struct {
	c       net.Conn
	br      *bufio.Reader
	pending []byte
	writers sync.WaitGroup
	// lastWrite is closed when the previous flush has been written; writes
	// must reach the server in order (VERSION before the first command).
	lastWrite chan struct{}
}

// errCode carries the exit code a failed director exchange maps to.
type errCode int

func (e errCode) Error() string { return "exit " + strconv.Itoa(int(e)) }

func exitOf(err error) int {
	var ec errCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	return exTempFail
}

// dialDirector connects and does the VERSION handshake. An unreachable socket or a failed
// handshake kills 2.3's doveadm-server; spec 0 answers 75 instead, and 76 for a peer that
// is not a director-admin server.
func (c *cmdCtx) dialDirector() (*adminConn, error) {
	path, _ := c.str("socket-path")
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	nc, err := c.svc.DialAdmin(ctx, path)
	if err != nil {
		c.log.Error("director-admin connect failed", "socket", path, "err", err)
		return nil, errCode(exTempFail)
	}
	a := &adminConn{c: nc, br: bufio.NewReader(nc)}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	// The director greets first, so read its VERSION, then send ours synchronously: once
	// the write has returned, no later command can overtake it (the in-process pipe has no
	// buffer, and an overtaking command made the server refuse the handshake).
	line, err := a.br.ReadString('\n')
	if err == nil {
		_, err = io.WriteString(nc, "VERSION\tdirector-doveadm\t1\t0\n")
	}
	if err != nil {
		a.close()
		return nil, errCode(exTempFail)
	}
	line = strings.TrimSuffix(line, "\n")
	if !strings.HasPrefix(line, "VERSION\tdirector-doveadm\t1\t") {
		if len(line) > 64 {
			line = line[:64] + "..." // whatever answered is not ours to copy into the log
		}
		c.log.Error("director-admin: incompatible handshake", "line", line)
		a.close()
		return nil, errCode(exProtocol)
	}
	nc.SetDeadline(time.Now().Add(adminTimeout))
	if dl, ok := c.ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	return a, nil
}

func (a *adminConn) close() {
	a.c.Close()
	a.writers.Wait()
}

// commandLine is a command line with its arguments tab-escaped.
func commandLine(verb string, args ...string) string {
	for _, a := range args {
		verb += "\t" + tabescape.Escape(a)
	}
	return verb
}

// sendRaw queues a line whose fields are already escaped (or deliberately not). Lines go
// out when the next reply is read: writing runs concurrently with reading, because an
// unbuffered in-process pipe would otherwise deadlock when both sides write at once (the
// greeting and our VERSION, or several commands sent before their replies are read).
func (a *adminConn) sendRaw(line string) error {
	if strings.ContainsAny(line, "\r\n\x00") {
		// Every line is built from escaped or validated fields; one that
		// still holds a line break would smuggle a second command.
		return errCode(exUsage)
	}
	a.pending = append(a.pending, line+"\n"...)
	return nil
}

func (a *adminConn) flush() {
	if len(a.pending) == 0 {
		return
	}
	buf := a.pending
	a.pending = nil
	prev, done := a.lastWrite, make(chan struct{})
	a.lastWrite = done
	a.writers.Add(1)
	go func() {
		defer a.writers.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		a.c.Write(buf) // a failure surfaces as a read error
	}()
}

// readLine returns one reply line; a disconnect is 2.3's "unexpectedly disconnected", 75.
func (a *adminConn) readLine() (string, error) {
	a.flush()
	line, err := a.br.ReadString('\n')
	if err != nil {
		return "", errCode(exTempFail)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// ask sends line and reads its one-line reply.
func (a *adminConn) ask(line string) (string, error) {
	if err := a.sendRaw(line); err != nil {
		return "", err
	}
	return a.readLine()
}

// askOK sends line and wants OK back; any other reply is logged after failure and gives
// exTempFail.
func (c *cmdCtx) askOK(a *adminConn, line, failure string) (*table, int) {
	l, err := a.ask(line)
	if err != nil {
		return nil, exitOf(err)
	}
	if l != "OK" {
		c.log.Error(failure + l)
		return nil, exTempFail
	}
	return nil, exOK
}

// listOf sends line and reads the list it answers.
func (a *adminConn) listOf(line string) ([]string, error) {
	if err := a.sendRaw(line); err != nil {
		return nil, err
	}
	return a.readList()
}

// readList reads lines up to the terminating empty line.
func (a *adminConn) readList() ([]string, error) {
	var out []string
	for {
		l, err := a.readLine()
		if err != nil {
			return nil, err
		}
		if l == "" {
			return out, nil
		}
		out = append(out, l)
	}
}

// adminSeparators are the bytes that end a director-admin field or line,
// or escape one.
const adminSeparators = "\x00\x01\t\r\n"

// lookupNetIP resolves host names; the package's tests replace it, so that no test (nor the
// fuzzer, which makes up names) sends a DNS query off the machine.
var lookupNetIP = net.DefaultResolver.LookupNetIP

// resolveHost turns a director host argument into IPs. Names under .invalid (RFC 6761)
// fail at once without a query (spec 0).
func resolveHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "invalid" || strings.HasSuffix(h, ".invalid") || host == "" {
		return nil, errors.New("unresolvable host")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := lookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return nil, errors.New("unresolvable host")
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

func (c *cmdCtx) resolve(host string) ([]netip.Addr, int) {
	ips, err := resolveHost(c.ctx, host)
	if err != nil {
		c.log.Error("Couldn't resolve host", "host", host)
		return nil, exTempFail
	}
	return ips, exOK
}

// hostParam resolves the required "host" parameter.
func (c *cmdCtx) hostParam() ([]netip.Addr, int) {
	host, ok := c.str("host")
	if !ok {
		return nil, exUsage
	}
	return c.resolve(host)
}

// perHost pipelines one line per host (line(ip)) and reads the replies in order, as Dovecot's
// doveadm does for a name that resolves to several addresses. NOTFOUND is logged at
// notFoundLevel and gives notFoundCode (exTempFail for add and update, as 2.3 has it); any
// other reply but OK is logged as an error and gives exTempFail, which wins.
func (c *cmdCtx) perHost(a *adminConn, ips []netip.Addr, line func(netip.Addr) string, notFoundLevel slog.Level, notFoundCode int) (*table, int) {
	for _, ip := range ips {
		if err := a.sendRaw(line(ip)); err != nil {
			return nil, exitOf(err)
		}
	}
	code := exOK
	for _, ip := range ips {
		l, err := a.readLine()
		if err != nil {
			return nil, exitOf(err)
		}
		switch l {
		case "OK":
		case "NOTFOUND":
			c.log.Log(context.Background(), notFoundLevel, ip.String()+": doesn't exist")
			if code != exTempFail {
				code = notFoundCode
			}
		default:
			c.log.Error(ip.String() + ": " + l)
			code = exTempFail
		}
	}
	return nil, code
}

// parseUnixTS parses a director timestamp field.
func parseUnixTS(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func isAllDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
