package pop3

import (
	"bufio"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

// errLineTooLong ends the connection: Dovecot's login processes give up on a line that does
// not fit their input buffer rather than skipping it.
var errLineTooLong = login.ErrLineTooLong

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
