// Package passdb lets usher check passwords itself before routing a login (usher-product.md
// section 3), so that wrong passwords never reach a backend and count toward usher's own
// penalties, as with a Dovecot director whose passdb verifies passwords.
//
// Supported: passdb { driver = passwd-file  args = [scheme=S] [username_format=F] PATH } with
// %-variables in PATH (%s service, %u, %n, %d), and driver = static with password=P or
// nopassword=y. Schemes: PLAIN, CLEARTEXT, CRYPT (by prefix: $1$, $2y$, $5$, $6$),
// MD5-CRYPT, BLF-CRYPT, SHA256-CRYPT, SHA512-CRYPT, SHA/SHA1, SHA256, SHA512, SSHA, SSHA256,
// SSHA512, PLAIN-MD5, SMD5 (with .HEX/.B64), PBKDF2, ARGON2ID, ARGON2I. Every comparison is
// constant-time and an unknown user's password is checked against a decoy hash of the
// file's commonest scheme, so neither a near match nor a missing user shows in the timing.
package passdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/usher-mail/usher/internal/config"
)

// DefaultFileScheme is Dovecot's default scheme for passwd-file passwords without {SCHEME}.
const DefaultFileScheme = "CRYPT"

// DB checks passwords against the configured passdbs in order, as Dovecot does with its
// default result_failure=continue: the first passdb that accepts the password wins.
type DB struct {
	usernameFormat string
	dbs            []source

	mu    sync.Mutex
	files map[string]*userFile // expanded path -> file, shared by all passdbs
}

type source struct {
	driver string
	// passwd-file
	scheme, usernameFormat, path string
	// static
	password   string
	nopassword bool
	fields     []string // static's args but password and nopassword: its reply fields
}

// New builds the passdb of settings' passdb sections. It returns nil when there is none:
// usher then checks nothing and proxies every login, the backends deciding (Dovecot's
// "proxy=y nopassword=y" director setup). Unsupported drivers are errors naming the
// section's file and line. usernameFormat is auth_username_format.
func New(passdbs []config.Passdb, usernameFormat string) (*DB, error) {
	if len(passdbs) == 0 {
		return nil, nil
	}
	db := &DB{usernameFormat: usernameFormat, files: map[string]*userFile{}}
	for _, p := range passdbs {
		src, err := parseSource(p)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: passdb: %w", p.File, p.Line, err)
		}
		db.dbs = append(db.dbs, src)
	}
	return db, nil
}

func parseSource(p config.Passdb) (source, error) {
	src := source{driver: p.Driver, scheme: DefaultFileScheme, usernameFormat: "%u"}
	args := strings.Fields(p.Args)
	switch p.Driver {
	case "passwd-file":
		for len(args) > 1 {
			k, v, ok := strings.Cut(args[0], "=")
			if !ok {
				break
			}
			switch k {
			case "scheme":
				src.scheme = strings.ToUpper(v)
			case "username_format":
				src.usernameFormat = v
			default:
				return src, fmt.Errorf("passwd-file: unknown argument %q", args[0])
			}
			args = args[1:]
		}
		if len(args) != 1 {
			return src, errors.New("passwd-file: args must end with the file's path")
		}
		src.path = args[0]
		if !Supported(src.scheme) {
			return src, fmt.Errorf("passwd-file: unsupported scheme %s", src.scheme)
		}
	case "static":
		for _, a := range args {
			k, v, _ := strings.Cut(a, "=")
			switch k {
			case "password":
				src.password = v
			case "nopassword":
				src.nopassword = v != "n" && v != "no"
			default:
				src.fields = append(src.fields, a)
			}
		}
	default:
		return src, fmt.Errorf("driver %q is not built into usher (passwd-file, static); set usher_auth_service to have a Dovecot auth service with this passdb answer the logins", p.Driver)
	}
	return src, nil
}

// FormatUser applies an auth_username_format to user (e.g. %Ln: lower-case, domain stripped).
func FormatUser(format, user string) string {
	if format == "" {
		return user
	}
	return expand(format, vars{user: user})
}

// Username applies auth_username_format (e.g. %Ln: lower-case, domain stripped).
func (db *DB) Username(user string) string { return FormatUser(db.usernameFormat, user) }

// ChecksPasswords reports whether a login's password matters to db: false only when every
// passdb is static with nopassword, which answers with its fields whatever the client sent
// (so a login whose password usher never sees, a relayed SASL exchange, can pass).
func (db *DB) ChecksPasswords() bool {
	for _, src := range db.dbs {
		if src.driver != "static" || !src.nopassword {
			return true
		}
	}
	return false
}

// Verify reports whether pass is the password of user for the service ("imap", "pop3",
// "sieve", ...). err is set only when no passdb could decide (e.g. a file is unreadable or a
// stored password has an unknown scheme) and no other passdb accepted: a temporary failure,
// not a wrong password.
func (db *DB) Verify(service, user, pass string) (bool, error) {
	user = db.Username(user)
	var firstErr error
	for _, src := range db.dbs {
		ok, err := db.check(src, service, user, pass)
		if ok {
			return true, nil
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return false, firstErr
}

func (db *DB) check(src source, service, user, pass string) (bool, error) {
	if src.driver == "static" {
		if src.nopassword {
			return true, nil
		}
		return equal([]byte(src.password), []byte(pass)), nil
	}
	v := vars{user: user, service: service}
	e, found, decoy, err := db.file(expand(src.path, v)).lookup(expand(src.usernameFormat, v))
	if err != nil {
		return false, err
	}
	if e.nopassword {
		return true, nil
	}
	if !found || e.password == "" {
		// Spend what a known user's check spends, then refuse whatever the decoy said.
		if decoy != "" {
			scheme, stored := SplitScheme(decoy, src.scheme)
			checkStored(scheme, stored, pass)
		}
		return false, nil
	}
	scheme, stored := SplitScheme(e.password, src.scheme)
	ok, err := checkStored(scheme, stored, pass)
	if err != nil {
		return false, fmt.Errorf("user %s: %w %s", user, err, scheme)
	}
	return ok, nil
}

// checkStored is Check; a test replaces it to see which hashes a login computes.
var checkStored = Check

func (db *DB) file(path string) *userFile {
	db.mu.Lock()
	defer db.mu.Unlock()
	f, ok := db.files[path]
	if !ok {
		f = &userFile{path: path}
		db.files[path] = f
	}
	return f
}

// Authenticate is the built-in passdbs' answer to a login, as the login pipeline asks
// (passdb.Authenticator): the first passdb that accepts the password answers OK with its
// fields (a passwd-file entry's extra fields, a static passdb's args). A Request without a
// mechanism is a lookup (LMTP's RCPT): the first passdb that knows the user answers,
// without a password check. A passdb that cannot decide makes the answer Temp, unless
// another accepts.
func (db *DB) Authenticate(ctx context.Context, req Request) (Reply, error) {
	if err := ctx.Err(); err != nil {
		return Reply{Temp: true}, err
	}
	user := db.Username(req.User)
	var firstErr error
	for _, src := range db.dbs {
		fields, ok, err := db.answer(src, req, user)
		if ok {
			r := Reply{OK: true, Fields: fields}
			for _, f := range fields {
				if v, ok := strings.CutPrefix(f, "user="); ok {
					r.User = v
				}
			}
			return r, nil
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return Reply{Temp: true}, firstErr
	}
	return Reply{}, nil
}

// answer is one passdb's verdict on req, with its fields when it accepts.
func (db *DB) answer(src source, req Request, user string) ([]string, bool, error) {
	if src.driver == "static" {
		if req.Mech == "" {
			return src.fields, true, nil
		}
		ok, err := db.check(src, req.Service, user, req.Pass)
		return src.fields, ok, err
	}
	if req.Mech != "" {
		if ok, err := db.check(src, req.Service, user, req.Pass); !ok {
			return nil, false, err
		}
	}
	v := vars{user: user, service: req.Service}
	e, found, _, err := db.file(expand(src.path, v)).lookup(expand(src.usernameFormat, v))
	return e.fields, err == nil && found, err
}

var _ Authenticator = (*DB)(nil)
