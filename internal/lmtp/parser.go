package lmtp

import (
	"errors"
	"strconv"
	"strings"
)

// command is one parsed client command line. The line itself is never kept: MAIL and RCPT
// carry the sender's and recipients' addresses, which the logs should not need whole.
type command struct {
	verb string // upper case
	// arg is everything after the verb and one space, unparsed (LHLO's domain, BDAT's size).
	arg string
	// path and params are filled for MAIL FROM and RCPT TO: path without its angle brackets
	// ("" for the null sender), params keyed by upper-case name (value "" when absent).
	path   string
	params map[string]string
}

// syntaxError is answered with its text; the connection stays open.
type syntaxError struct{ reply string }

func (e *syntaxError) Error() string { return e.reply }

var errUnknown = &syntaxError{"500 5.5.1 Unknown command"}

// parseCommand splits a command line (without CRLF) into verb and arguments. MAIL and RCPT
// get their path and parameters parsed as RFC 5321 describes, leniently where real MTAs
// are sloppy (a space after the colon, lower-case keywords).
func parseCommand(line string) (*command, error) {
	verb, arg, _ := strings.Cut(line, " ")
	if verb == "" || len(verb) > 16 {
		return nil, &syntaxError{"500 5.5.2 Invalid command syntax"}
	}
	for i := 0; i < len(verb); i++ {
		ch := verb[i]
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z') {
			return nil, &syntaxError{"500 5.5.2 Invalid command syntax"}
		}
	}
	cmd := &command{verb: strings.ToUpper(verb), arg: arg}
	switch cmd.verb {
	case "MAIL":
		return cmd, cmd.parsePathArg("FROM:", true)
	case "RCPT":
		return cmd, cmd.parsePathArg("TO:", false)
	}
	return cmd, nil
}

// parsePathArg parses "FROM:<path> params" / "TO:<path> params".
func (c *command) parsePathArg(keyword string, nullOK bool) error {
	what := strings.TrimSuffix(keyword, ":")
	bad := func(why string) error { return &syntaxError{"501 5.5.4 Invalid " + what + ": " + why} }
	if len(c.arg) < len(keyword) || !strings.EqualFold(c.arg[:len(keyword)], keyword) {
		return &syntaxError{"501 5.5.4 Invalid parameters"}
	}
	rest := strings.TrimLeft(c.arg[len(keyword):], " ")
	path, rest, err := splitPath(rest)
	if err != nil {
		return bad(err.Error())
	}
	if path == "" && !nullOK {
		return bad("Empty path not allowed")
	}
	c.path = path
	c.params, err = parseParams(rest)
	if err != nil {
		return &syntaxError{"501 5.5.4 Invalid parameters"}
	}
	return nil
}

// splitPath takes "<...>" off the front of s and returns its inside (without a source route)
// and what follows. Quoted local parts may contain '>' and spaces.
func splitPath(s string) (path, rest string, err error) {
	if !strings.HasPrefix(s, "<") {
		return "", "", errors.New("Missing '<' at beginning of path")
	}
	quoted, esc := false, false
	for i := 1; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch < 0x20 || ch == 0x7f: // escaped or not (RFC 5321 quoted-pairSMTP is %d32-126)
			return "", "", errors.New("Invalid character in path")
		case esc:
			esc = false
		case ch == '\\' && quoted:
			esc = true
		case ch == '"':
			quoted = !quoted
		case ch == '>' && !quoted:
			path, rest = s[1:i], s[i+1:]
			if rest != "" && rest[0] != ' ' {
				return "", "", errors.New("Invalid character after path")
			}
			path = stripSourceRoute(path)
			if path != "" && !validMailbox(path) {
				return "", "", errors.New("Invalid address")
			}
			return path, strings.TrimLeft(rest, " "), nil
		}
	}
	return "", "", errors.New("Missing '>' at end of path")
}

// stripSourceRoute drops an obsolete "@a,@b:" prefix (RFC 5321 4.1.2 says to ignore it).
func stripSourceRoute(p string) string {
	if strings.HasPrefix(p, "@") {
		if i := strings.IndexByte(p, ':'); i >= 0 {
			return p[i+1:]
		}
	}
	return p
}

// validMailbox checks local@domain loosely: one unquoted '@' with text on both sides. A bare
// local part is accepted too: LMTP is often used with unqualified recipients.
func validMailbox(p string) bool {
	local, domain := splitAddress(p)
	if local == "" {
		return false
	}
	if strings.HasSuffix(p, "@") || strings.ContainsAny(domain, " @\"") {
		return false
	}
	return true
}

// splitAddress cuts an address at its last '@' outside quotes.
func splitAddress(p string) (local, domain string) {
	quoted, esc, at := false, false, -1
	for i := 0; i < len(p); i++ {
		ch := p[i]
		switch {
		case esc:
			esc = false
		case ch == '\\' && quoted:
			esc = true
		case ch == '"':
			quoted = !quoted
		case ch == '@' && !quoted:
			at = i
		}
	}
	if at < 0 {
		return p, ""
	}
	return p[:at], p[at+1:]
}

// parseParams reads "KEY[=VALUE] ..." into upper-case keys.
func parseParams(s string) (map[string]string, error) {
	params := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, hasValue := strings.Cut(f, "=")
		if k == "" || hasValue && v == "" {
			return nil, errors.New("empty parameter")
		}
		for i := 0; i < len(k); i++ {
			ch := k[i]
			if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				return nil, errors.New("bad parameter name")
			}
		}
		k = strings.ToUpper(k)
		if _, dup := params[k]; dup {
			return nil, errors.New("duplicate parameter")
		}
		params[k] = v
	}
	return params, nil
}

// parseBDAT reads "size [LAST]".
func parseBDAT(arg string) (size int64, last bool, err error) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 || len(f[0]) > 18 {
		return 0, false, errors.New("bad BDAT arguments")
	}
	for i := 0; i < len(f[0]); i++ {
		if f[0][i] < '0' || f[0][i] > '9' {
			return 0, false, errors.New("bad chunk size")
		}
	}
	size, err = strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, false, err
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, errors.New("bad BDAT arguments")
		}
		last = true
	}
	return size, last, nil
}
