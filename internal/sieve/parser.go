package sieve

import (
	"bufio"
	"errors"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

// The pre-login parser reads one command at a time: text lines, each possibly ending in a
// literal announcement {n} or {n+} whose n bytes follow. Framing (reading, limits) is
// separate from tokenizing, so a syntax error never leaves the stream half-read. A client
// should only send {n+}, but like Dovecot we also read {n} without waiting for a go-ahead:
// ManageSieve has no continuation for literals.

// errLineTooLong ends the connection with a BYE.
var errLineTooLong = login.ErrLineTooLong

// errSyntax is answered with the generic error and counts as a bad command.
var errSyntax = errors.New("syntax error")

// piece is a command fragment: a text line (without CRLF) or the bytes of a literal.
type piece struct {
	data    string
	literal bool
}

// reader frames commands from a client.
type reader struct {
	br         *bufio.Reader
	maxCommand int // total bytes of one command, text and literals together
}

// readLine reads one line (see login.ReadLine).
func (r *reader) readLine(limit int) (string, error) { return login.ReadLine(r.br, limit) }

// literalSize recognises a trailing {n} or {n+}.
func literalSize(line string) (n int, ok bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	open := strings.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	num := strings.TrimSuffix(line[open+1:len(line)-1], "+")
	if num == "" || len(num) > 9 || strings.Trim(num, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.Atoi(num)
	return v, err == nil
}

// readCommand reads one whole command, literals included.
func (r *reader) readCommand() ([]piece, error) { return r.readCommandMax(r.maxCommand) }

// readCommandMax is readCommand bounded to limit bytes instead of maxCommand (a SASL
// response, login.MaxSASLResponse).
func (r *reader) readCommandMax(limit int) ([]piece, error) {
	var pieces []piece
	total := 0
	for {
		line, err := r.readLine(limit - total)
		if err != nil {
			return nil, err
		}
		total += len(line)
		pieces = append(pieces, piece{data: line})
		n, ok := literalSize(line)
		if !ok {
			return pieces, nil
		}
		if total+n > limit {
			return nil, errLineTooLong
		}
		buf := make([]byte, n)
		if _, err := ioReadFull(r.br, buf); err != nil {
			return nil, err
		}
		total += n
		pieces = append(pieces, piece{data: string(buf), literal: true})
	}
}

func ioReadFull(br *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := br.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// token is an atom (command names, bare words) or a string (quoted or literal).
type token struct {
	s      string
	string bool
}

// command is a tokenized client command.
type command struct {
	name string // upper case
	args []token
}

// tokenize splits a framed command into tokens separated by single spaces.
func tokenize(pieces []piece) ([]token, error) {
	var toks []token
	needSpace := false
	for i := 0; i < len(pieces); i++ {
		s := pieces[i].data
		for pos := 0; pos < len(s); {
			if needSpace {
				if s[pos] != ' ' || pos+1 == len(s) {
					return nil, errSyntax
				}
				pos++
			}
			needSpace = true
			switch s[pos] {
			case '"':
				str, next, ok := quoted(s, pos)
				if !ok {
					return nil, errSyntax
				}
				toks = append(toks, token{s: str, string: true})
				pos = next
			case '{':
				// The marker ends its text piece; the literal is the next piece and the
				// command goes on in the one after it.
				if _, ok := literalSize(s[pos:]); !ok || strings.LastIndexByte(s, '{') != pos || i+1 >= len(pieces) {
					return nil, errSyntax
				}
				i++
				toks = append(toks, token{s: pieces[i].data, string: true})
				pos = len(s)
			default:
				start := pos
				for pos < len(s) && isAtomChar(s[pos]) {
					pos++
				}
				if pos == start {
					return nil, errSyntax
				}
				toks = append(toks, token{s: s[start:pos]})
			}
		}
	}
	return toks, nil
}

func isAtomChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`"{}()%*\`, rune(c))
}

// quoted reads a quoted string starting at s[pos] == '"'; only \" and \\ are escapes.
func quoted(s string, pos int) (string, int, bool) {
	var sb strings.Builder
	for i := pos + 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return sb.String(), i + 1, true
		case '\\':
			if i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				i++
				sb.WriteByte(s[i])
				continue
			}
			return "", 0, false
		default:
			sb.WriteByte(c)
		}
	}
	return "", 0, false
}

// parseCommand tokenizes a command; its name must be an atom.
func parseCommand(pieces []piece) (*command, error) {
	toks, err := tokenize(pieces)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 || toks[0].string {
		return nil, errSyntax
	}
	return &command{name: strings.ToUpper(toks[0].s), args: toks[1:]}, nil
}

// quote renders s as a ManageSieve string: quoted when it can be, else a literal.
func quote(s string) string {
	if strings.ContainsAny(s, "\r\n\x00") || len(s) > 1024 {
		return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
