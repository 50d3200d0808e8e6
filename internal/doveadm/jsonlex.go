package doveadm

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// tokKind is the kind of a JSON token produced by lexer.
type tokKind int

const (
	tokEOF tokKind = iota // the root value is complete and only whitespace follows
	tokArrStart
	tokArrEnd
	tokObjStart
	tokObjEnd
	tokKey
	tokString
	tokNumber
	tokTrue
	tokFalse
	tokNull
)

type token struct {
	kind tokKind
	text string // string/key contents (unescaped), number literal, or literal text
}

// lexError carries the text the 2.3 JSON lexer reports; it is sent as "JSON parse error: <msg>".
type lexError struct{ msg string }

func (e *lexError) Error() string { return e.msg }

// Lexer messages as Dovecot 2.3's JSON lexer words them (some are sic).
const (
	errInvalidValue  = "Invalid data as value"
	errArrayNext     = "Expected ',' or '}' after array value"
	errObjectNext    = "Expected ',' or '}' after object value"
	errObjectKey     = "Expected string as object key"
	errColon         = "Expected ':' after object key"
	errMissing       = "Missing '}'"
	errTrailing      = "Unexpected data at the end"
	errInvalidEscape = "Invalid escape string"
	errInvalidNumber = "Invalid numeric"
	errInvalidUTF8   = "Invalid UTF-8 string"
)

// frame states of one open container.
const (
	stArrFirst = iota // after '[': a value or ']'
	stArrNext         // after a value in an array: ',' or ']'
	stArrValue        // after ',' in an array: a value
	stObjFirst        // after '{': a key or '}'
	stObjColon        // after a key: ':'
	stObjValue        // after ':' (or nothing yet): a value
	stObjNext         // after a value: ',' or '}'
	stObjKey          // after ',' in an object: a key
)

// lexer is a pull tokenizer over a complete body. Tokens come out one at a time so that
// the request parser can run each command as soon as its closing ']' is read.
type lexer struct {
	data  []byte
	pos   int
	stack []int
	done  bool // root value complete
}

func newLexer(data []byte) *lexer { return &lexer{data: data} }

func (l *lexer) skipWS() {
	for l.pos < len(l.data) {
		switch l.data[l.pos] {
		case ' ', '\t', '\r', '\n':
			l.pos++
		default:
			return
		}
	}
}

func lexFail(msg string) (token, error) { return token{}, &lexError{msg} }

// next returns the next token. Once the root is complete it returns tokEOF, or the
// trailing-data error if anything but whitespace follows.
func (l *lexer) next() (token, error) {
	l.skipWS()
	if l.done {
		if l.pos < len(l.data) {
			return lexFail(errTrailing)
		}
		return token{kind: tokEOF}, nil
	}
	if l.pos >= len(l.data) {
		return lexFail(errMissing)
	}
	c := l.data[l.pos]
	if len(l.stack) == 0 {
		return l.value()
	}
	top := &l.stack[len(l.stack)-1]
	switch *top {
	case stArrFirst:
		if c == ']' {
			l.pos++
			return l.closeContainer(tokArrEnd)
		}
		*top = stArrNext
		return l.value()
	case stArrValue:
		*top = stArrNext
		return l.value()
	case stArrNext:
		switch c {
		case ',':
			l.pos++
			*top = stArrValue
			return l.next()
		case ']':
			l.pos++
			return l.closeContainer(tokArrEnd)
		}
		return lexFail(errArrayNext)
	case stObjFirst, stObjKey:
		if c == '}' && *top == stObjFirst {
			l.pos++
			return l.closeContainer(tokObjEnd)
		}
		if c != '"' {
			return lexFail(errObjectKey)
		}
		s, err := l.str()
		if err != nil {
			return token{}, err
		}
		*top = stObjColon
		return token{kind: tokKey, text: s}, nil
	case stObjColon:
		if c != ':' {
			return lexFail(errColon)
		}
		l.pos++
		*top = stObjValue
		return l.next()
	case stObjValue:
		*top = stObjNext
		return l.value()
	case stObjNext:
		switch c {
		case ',':
			l.pos++
			*top = stObjKey
			return l.next()
		case '}':
			l.pos++
			return l.closeContainer(tokObjEnd)
		}
		return lexFail(errObjectNext)
	}
	return lexFail(errInvalidValue)
}

func (l *lexer) closeContainer(k tokKind) (token, error) {
	l.stack = l.stack[:len(l.stack)-1]
	if len(l.stack) == 0 {
		l.done = true
	}
	return token{kind: k}, nil
}

// scalarDone marks the root complete when a scalar was the whole document.
func (l *lexer) scalarDone(t token) (token, error) {
	if len(l.stack) == 0 {
		l.done = true
	}
	return t, nil
}

func (l *lexer) value() (token, error) {
	c := l.data[l.pos]
	switch {
	case c == '[':
		l.pos++
		l.stack = append(l.stack, stArrFirst)
		return token{kind: tokArrStart}, nil
	case c == '{':
		l.pos++
		l.stack = append(l.stack, stObjFirst)
		return token{kind: tokObjStart}, nil
	case c == '"':
		s, err := l.str()
		if err != nil {
			return token{}, err
		}
		return l.scalarDone(token{kind: tokString, text: s})
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := l.number()
		if err != nil {
			return token{}, err
		}
		return l.scalarDone(token{kind: tokNumber, text: n})
	}
	for _, lit := range []struct {
		s string
		k tokKind
	}{{"true", tokTrue}, {"false", tokFalse}, {"null", tokNull}} {
		if c != lit.s[0] {
			continue
		}
		rest := l.data[l.pos:]
		if len(rest) < len(lit.s) {
			if string(rest) == lit.s[:len(rest)] {
				return lexFail(errMissing)
			}
			return lexFail(errInvalidValue)
		}
		if string(rest[:len(lit.s)]) != lit.s {
			return lexFail(errInvalidValue)
		}
		l.pos += len(lit.s)
		return l.scalarDone(token{kind: lit.k, text: lit.s})
	}
	return lexFail(errInvalidValue)
}

func (l *lexer) number() (string, error) {
	start := l.pos
	p := l.pos
	d := l.data
	digits := func() int {
		n := 0
		for p < len(d) && d[p] >= '0' && d[p] <= '9' {
			p++
			n++
		}
		return n
	}
	if d[p] == '-' {
		p++
	}
	if digits() == 0 {
		if p >= len(d) {
			return "", &lexError{errMissing}
		}
		return "", &lexError{errInvalidNumber}
	}
	if p < len(d) && d[p] == '.' {
		p++
		if digits() == 0 {
			return "", &lexError{errInvalidNumber}
		}
	}
	if p < len(d) && (d[p] == 'e' || d[p] == 'E') {
		p++
		if p < len(d) && (d[p] == '+' || d[p] == '-') {
			p++
		}
		if digits() == 0 {
			return "", &lexError{errInvalidNumber}
		}
	}
	l.pos = p
	return string(d[start:p]), nil
}

func (l *lexer) str() (string, error) {
	d := l.data
	p := l.pos + 1
	var out []byte
	for {
		if p >= len(d) {
			return "", &lexError{errMissing}
		}
		c := d[p]
		switch {
		case c == '"':
			l.pos = p + 1
			return string(out), nil
		case c == '\\':
			if p+1 >= len(d) {
				return "", &lexError{errMissing}
			}
			e := d[p+1]
			p += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, np, err := hex4(d, p)
				if err != nil {
					return "", err
				}
				p = np
				if utf16.IsSurrogate(r) {
					if np+1 < len(d) && d[np] == '\\' && d[np+1] == 'u' {
						r2, np2, err := hex4(d, np+2)
						if err != nil {
							return "", err
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							r, p = dec, np2
						} else {
							return "", &lexError{errInvalidEscape}
						}
					} else {
						return "", &lexError{errInvalidEscape}
					}
				}
				if r == 0 {
					// NUL cannot live in the C strings 2.3 uses.
					return "", &lexError{errInvalidEscape}
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", &lexError{errInvalidEscape}
			}
		default:
			if c < 0x80 {
				out = append(out, c)
				p++
				continue
			}
			r, size := utf8.DecodeRune(d[p:])
			if r == utf8.RuneError && size <= 1 {
				if !utf8.FullRune(d[p:]) {
					return "", &lexError{errMissing}
				}
				return "", &lexError{errInvalidUTF8}
			}
			out = append(out, d[p:p+size]...)
			p += size
		}
	}
}

func hex4(d []byte, p int) (rune, int, error) {
	if p+4 > len(d) {
		return 0, p, &lexError{errMissing}
	}
	v, err := strconv.ParseUint(string(d[p:p+4]), 16, 32)
	if err != nil {
		return 0, p, &lexError{errInvalidEscape}
	}
	return rune(v), p + 4, nil
}
