package pop3

import (
	"bufio"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

// errLineTooLong ends the connection: Dovecot's login processes give up on a line that does
// not fit their input buffer rather than skipping it.
var errLineTooLong = login.ErrLineTooLong

// readLine reads one line (see login.ReadLine).
func readLine(br *bufio.Reader, limit int) (string, error) { return login.ReadLine(br, limit) }

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
