package imap

import (
	"bufio"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/login"
)

// The pre-login parser reads one command at a time: text lines, each possibly ending in a
// literal announcement {n} / {n+} whose n bytes follow. Framing (reading, limits, the "+ OK"
// continuation) is separate from tokenizing, so a syntax error never leaves the stream
// half-read: the whole command has been consumed before it is judged.

// Read errors that end the connection with "* BYE <text>".
var (
	errLineTooLong    = login.ErrLineTooLong
	errLiteralTooLong = &login.PartingError{Text: "Literal size too large"}
)

// Texts of tagged BAD replies, as Dovecot's imap-login words them.
const (
	badGeneric    = "Error in IMAP command received by server."
	badAtom       = "Invalid characters in atom"
	badLiteralEOL = "Missing LF after literal size"
)

// syntaxError is answered with "<tag> BAD <text>" and counts as a bad command.
type syntaxError struct{ text string }

func (e *syntaxError) Error() string { return e.text }

// piece is a command fragment: a text line (without CRLF) or the bytes of a literal.
type piece struct {
	data    string
	literal bool
}

// reader frames commands from a client.
type reader struct {
	br         *bufio.Reader
	maxCommand int // total bytes of one command, text and literals together
	maxLiteral int
	// cont is called before the data of a synchronizing literal: the client waits for it.
	cont func() error
}

// readLine reads one line (see login.ReadLine).
func (r *reader) readLine(limit int) (string, error) { return login.ReadLine(r.br, limit) }

// literalSize recognises a trailing {n} or {n+}. ok is false when the line does not end in one.
func literalSize(line string) (n int, sync, ok bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false, false
	}
	open := strings.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false, false
	}
	num := line[open+1 : len(line)-1]
	sync = true
	if strings.HasSuffix(num, "+") {
		num, sync = num[:len(num)-1], false
	}
	if num == "" || len(num) > 10 || strings.Trim(num, "0123456789") != "" {
		return 0, false, false
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, false, false
	}
	return int(v), sync, true
}

// readCommand reads one whole command, literals included.
func (r *reader) readCommand() ([]piece, error) {
	var pieces []piece
	total := 0
	for {
		line, err := r.readLine(r.maxCommand - total)
		if err != nil {
			return nil, err
		}
		total += len(line)
		pieces = append(pieces, piece{data: line})
		n, sync, ok := literalSize(line)
		if !ok {
			return pieces, nil
		}
		if n > r.maxLiteral || total+n > r.maxCommand {
			return nil, errLiteralTooLong
		}
		if sync && r.cont != nil {
			if err := r.cont(); err != nil {
				return nil, err
			}
		}
		buf := make([]byte, n)
		if _, err := readFull(r.br, buf); err != nil {
			return nil, err
		}
		total += n
		pieces = append(pieces, piece{data: string(buf), literal: true})
	}
}

func readFull(br *bufio.Reader, buf []byte) (int, error) {
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

// argKind tells how an argument was written; NIL and atoms differ from "NIL" and strings.
type argKind int

const (
	argAtom argKind = iota
	argString
	argList
)

type arg struct {
	kind argKind
	s    string
	list []arg
}

// command is a tokenized client command.
type command struct {
	tag  string
	name string // upper case
	args []arg
}

// isAtomChar reports the ATOM-CHAR set of RFC 3501 (no specials, controls or 8-bit).
func isAtomChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`(){%*"\]`, rune(c))
}

// tokenizer walks the pieces of one command.
type tokenizer struct {
	pieces []piece
	i      int // current piece
	pos    int // position in the current text piece
}

func (t *tokenizer) text() string { return t.pieces[t.i].data }

func (t *tokenizer) atEnd() bool {
	return t.pos >= len(t.text()) && t.i == len(t.pieces)-1
}

// parseCommand splits a framed command into tag, name and arguments. The tag is returned even
// on error so the BAD reply can carry it ("*" when there is none).
func parseCommand(pieces []piece) (*command, error) {
	t := &tokenizer{pieces: pieces}
	cmd := &command{tag: "*"}
	tag := t.atom()
	if tag == "" || strings.ContainsRune(tag, '+') {
		return cmd, &syntaxError{badGeneric}
	}
	cmd.tag = tag
	if !t.space() {
		return cmd, &syntaxError{badGeneric}
	}
	name := t.atom()
	if name == "" {
		return cmd, &syntaxError{badGeneric}
	}
	cmd.name = strings.ToUpper(name)
	for !t.atEnd() {
		if !t.space() {
			return cmd, t.junk()
		}
		a, err := t.arg(0)
		if err != nil {
			return cmd, err
		}
		cmd.args = append(cmd.args, a)
	}
	return cmd, nil
}

// junk names the problem at the current position.
func (t *tokenizer) junk() error {
	s := t.text()
	if t.pos < len(s) && s[t.pos] >= 0x80 || t.pos < len(s) && s[t.pos] == '"' {
		return &syntaxError{badAtom}
	}
	return &syntaxError{badGeneric}
}

func (t *tokenizer) atom() string {
	s := t.text()
	start := t.pos
	for t.pos < len(s) && isAtomChar(s[t.pos]) {
		t.pos++
	}
	return s[start:t.pos]
}

func (t *tokenizer) space() bool {
	s := t.text()
	if t.pos < len(s) && s[t.pos] == ' ' {
		t.pos++
		return true
	}
	return false
}

// maxDepth bounds list nesting; nothing before login needs more than ID's flat list.
const maxDepth = 4

func (t *tokenizer) arg(depth int) (arg, error) {
	s := t.text()
	if t.pos >= len(s) {
		return arg{}, &syntaxError{badGeneric}
	}
	switch c := s[t.pos]; {
	case c == '"':
		return t.quoted()
	case c == '{':
		return t.literal()
	case c == '(':
		if depth >= maxDepth {
			return arg{}, &syntaxError{badGeneric}
		}
		t.pos++
		a := arg{kind: argList}
		for {
			s = t.text()
			if t.pos < len(s) && s[t.pos] == ')' {
				t.pos++
				return a, nil
			}
			if len(a.list) > 0 && !t.space() {
				return arg{}, &syntaxError{badGeneric}
			}
			e, err := t.arg(depth + 1)
			if err != nil {
				return arg{}, err
			}
			a.list = append(a.list, e)
		}
	default:
		start := t.pos
		for t.pos < len(s) && (isAtomChar(s[t.pos]) || s[t.pos] == ']') {
			t.pos++
		}
		if t.pos == start {
			return arg{}, &syntaxError{badGeneric}
		}
		if t.pos < len(s) && s[t.pos] != ' ' && s[t.pos] != ')' {
			return arg{}, &syntaxError{badAtom}
		}
		return arg{kind: argAtom, s: s[start:t.pos]}, nil
	}
}

func (t *tokenizer) quoted() (arg, error) {
	s := t.text()
	var sb strings.Builder
	for i := t.pos + 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			t.pos = i + 1
			return arg{kind: argString, s: sb.String()}, nil
		case '\\':
			if i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				i++
				sb.WriteByte(s[i])
				continue
			}
			return arg{}, &syntaxError{badGeneric}
		default:
			sb.WriteByte(c)
		}
	}
	return arg{}, &syntaxError{badGeneric}
}

// literal consumes a {n} marker that must end the text piece, and the literal piece after it.
func (t *tokenizer) literal() (arg, error) {
	rest := t.text()[t.pos:]
	if _, _, ok := literalSize(rest); !ok || strings.LastIndexByte(rest, '{') != 0 || t.i+1 >= len(t.pieces) {
		return arg{}, &syntaxError{badLiteralEOL}
	}
	data := t.pieces[t.i+1].data
	t.i += 2
	t.pos = 0
	return arg{kind: argString, s: data}, nil
}

// str returns an argument usable as an astring (atom, quoted or literal).
func (a arg) str() (string, bool) {
	return a.s, a.kind != argList
}

// isNIL reports an unquoted NIL.
func (a arg) isNIL() bool { return a.kind == argAtom && strings.EqualFold(a.s, "NIL") }
