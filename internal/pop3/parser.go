package pop3

import (
	"bufio"
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// errLineTooLong ends the connection: Dovecot's login processes give up on a line that does
// not fit their input buffer rather than skipping it.
var errLineTooLong = errors.New("Input buffer full, aborting")

// readLine reads up to LF, strips CRLF and refuses lines longer than limit. The whole line is
// consumed before it is judged, so a parse error never leaves the stream half-read.
func readLine(br *bufio.Reader, limit int) (string, error) {
	var sb strings.Builder
	for {
		frag, err := br.ReadSlice('\n')
		if sb.Len()+len(frag) > limit+2 {
			return "", errLineTooLong
		}
		sb.Write(frag)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		line := strings.TrimSuffix(sb.String(), "\n")
		return strings.TrimSuffix(line, "\r"), nil
	}
}

// command is one client line: the upper-cased name and everything after the first space.
// POP3 arguments are not tokenized further: "USER a b" names the user "a b", as in Dovecot.
type command struct {
	name string
	args string
}

func parseCommand(line string) command {
	name, args, _ := strings.Cut(line, " ")
	return command{name: strings.ToUpper(name), args: args}
}

// xclient holds what a trusted peer may override with XCLIENT; zero fields (ttl -1) are
// unchanged.
type xclient struct {
	addr    netip.Addr
	port    uint16
	session string
	ttl     int
}

// parseXCLIENT reads "ADDR=ip PORT=n SESSION=id TTL=n". Unknown keys are ignored, as Dovecot
// does, so newer proxies can send more; a malformed known value fails the whole command.
func parseXCLIENT(args string) (xclient, bool) {
	x := xclient{ttl: -1}
	for _, f := range strings.Fields(args) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch strings.ToUpper(k) {
		case "ADDR":
			ip, err := netip.ParseAddr(v)
			if err != nil {
				return xclient{}, false
			}
			x.addr = ip.Unmap()
		case "PORT":
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil || p == 0 {
				return xclient{}, false
			}
			x.port = uint16(p)
		case "SESSION":
			if v == "" || len(v) > 64 {
				return xclient{}, false
			}
			x.session = v
		case "TTL":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 255 {
				return xclient{}, false
			}
			x.ttl = n
		}
	}
	return x, true
}
