// Package authclient speaks Dovecot's auth-client protocol (version 1.2), the one Dovecot's own
// login processes use to ask the auth service to check a login: a handshake that lists the
// mechanisms, then AUTH requests answered by OK, FAIL or CONT. A director that asks an existing
// Dovecot auth service this way gets every passdb driver that service has (SQL, LDAP, Lua,
// checkpassword, ...) without a client for any of them.
package authclient

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/tabescape"
)

// maxLine is the protocol's line limit (Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH: GSSAPI
// exchanges are large); a longer line from the service ends the connection.
const maxLine = 16384

// Kind is what a reply says of a request.
type Kind uint8

const (
	OK   Kind = iota + 1 // authenticated: Fields hold the passdb's reply (user, proxy, host, ...)
	Fail                 // refused: Fields may hold user, reason, temp, ...
	Cont                 // the mechanism needs another round: Data is the challenge
)

func (k Kind) String() string {
	switch k {
	case OK:
		return "OK"
	case Fail:
		return "FAIL"
	case Cont:
		return "CONT"
	}
	return "?"
}

// Field is one "key=value" (or bare "key") of a reply, unescaped, in the order sent.
type Field struct {
	Key, Value string
	HasValue   bool
}

// Reply is one answer of the auth service to a request.
type Reply struct {
	Kind   Kind
	Data   []byte  // CONT: the decoded challenge
	Fields []Field // OK, FAIL
}

// Get returns the value of the first field named key and whether it was there (a bare flag
// such as "temp" is there with an empty value).
func (r Reply) Get(key string) (string, bool) {
	for _, f := range r.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// ErrProtocol marks a line that is not the protocol.
var ErrProtocol = errors.New("authclient: protocol error")

// ParseReply parses one line from the service (without its LF) that answers a request: "OK",
// "FAIL" or "CONT", the request id, then fields (OK, FAIL) or the base64 challenge (CONT).
func ParseReply(line string) (id uint32, r Reply, err error) {
	if len(line) > maxLine {
		return 0, Reply{}, fmt.Errorf("%w: line of %d bytes", ErrProtocol, len(line))
	}
	f := strings.Split(line, "\t")
	if len(f) < 2 {
		return 0, Reply{}, fmt.Errorf("%w: %q", ErrProtocol, clip(line))
	}
	switch f[0] {
	case "OK":
		r.Kind = OK
	case "FAIL":
		r.Kind = Fail
	case "CONT":
		r.Kind = Cont
	default:
		return 0, Reply{}, fmt.Errorf("%w: unknown reply %q", ErrProtocol, clip(f[0]))
	}
	n, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil || n == 0 || f[1][0] == '0' {
		return 0, Reply{}, fmt.Errorf("%w: request id %q", ErrProtocol, clip(f[1]))
	}
	if r.Kind == Cont {
		if len(f) != 3 {
			return 0, Reply{}, fmt.Errorf("%w: CONT wants one challenge", ErrProtocol)
		}
		if r.Data, err = base64.StdEncoding.DecodeString(f[2]); err != nil {
			return 0, Reply{}, fmt.Errorf("%w: CONT challenge not base64", ErrProtocol)
		}
		return uint32(n), r, nil
	}
	for _, kv := range f[2:] {
		if kv == "" {
			continue
		}
		k, v, has := strings.Cut(kv, "=")
		if k = tabescape.Unescape(k); k == "" {
			return 0, Reply{}, fmt.Errorf("%w: field without a name", ErrProtocol)
		}
		r.Fields = append(r.Fields, Field{Key: k, Value: tabescape.Unescape(v), HasValue: has})
	}
	return uint32(n), r, nil
}

// clip keeps error messages from quoting a whole line the service sent.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
