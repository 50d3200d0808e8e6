package relay

import (
	"bufio"
	"net"
)

// Handoff passes on what the pre-login readers still hold when a session turns into a relay:
// commands the client pipelined behind its login go to the backend, whatever the backend sent
// behind its OK goes to the client. The counts (in: to the backend, out: to the client) add
// to the relay's. Both readers go back to the pool (see NewReader): nothing may use them
// afterwards. Write errors are left to the relay, which meets the same connections next.
func Handoff(client net.Conn, clientBuf *bufio.Reader, backend net.Conn, backendBuf *bufio.Reader) (in, out int64) {
	in, out = passOn(clientBuf, backend), passOn(backendBuf, client)
	releaseReader(clientBuf)
	releaseReader(backendBuf)
	return in, out
}

func passOn(from *bufio.Reader, to net.Conn) int64 {
	n := from.Buffered()
	if n == 0 {
		return 0
	}
	b, _ := from.Peek(n)
	m, _ := to.Write(b)
	return int64(m)
}
