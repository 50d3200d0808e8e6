package pop3

import (
	"bufio"
	"encoding/base64"
	"net"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// fakeBackend is a tiny POP3 server: it accepts password "pass" for any user and, once
// logged in, answers STAT and QUIT. It records every line it receives.
type fakeBackend struct {
	*logintest.Backend
	banner string
}

func newFakeBackend(t *testing.T, banner string) *fakeBackend {
	t.Helper()
	if banner == "" {
		banner = "+OK [XCLIENT] Dovecot ready."
	}
	b := &fakeBackend{banner: banner}
	b.Backend = logintest.NewBackend(t, b.serve)
	return b
}

func (b *fakeBackend) serve(c net.Conn) {
	defer c.Close()
	bw := bufio.NewWriter(c)
	br := bufio.NewReader(c)
	say := func(s string) { bw.WriteString(s + "\r\n"); bw.Flush() }
	say(b.banner)
	user, loggedIn := "", false
	for {
		line, err := readLine(br, 1<<16)
		if err != nil {
			return
		}
		b.Record(line)
		cmd := parseCommand(line)
		pass := ""
		switch {
		case cmd.name == "XCLIENT":
			say("+OK Updated")
			continue
		case cmd.name == "STAT" && loggedIn:
			say("+OK 0 0")
			continue
		case cmd.name == "QUIT":
			say("+OK Logging out.")
			return
		case cmd.name == "USER" && !loggedIn:
			user = cmd.args
			say("+OK")
			continue
		case cmd.name == "PASS" && !loggedIn:
			pass = cmd.args
		case cmd.name == "AUTH" && !loggedIn:
			_, ir, _ := strings.Cut(cmd.args, " ")
			dec, _ := base64.StdEncoding.DecodeString(ir)
			if parts := strings.Split(string(dec), "\x00"); len(parts) == 3 {
				user, pass = parts[1], parts[2]
			}
		default:
			say("-ERR Unknown command.")
			continue
		}
		switch {
		case user == "busy":
			say("-ERR [IN-USE] Mailbox is locked.")
		case user == "tempfail":
			say("-ERR [SYS/TEMP] Try again later.")
		case pass == "pass" || pass == "pä ss":
			loggedIn = true
			say("+OK Logged in.")
		default:
			say("-ERR [AUTH] Authentication failed.")
		}
	}
}

type harness = logintest.Harness[*Server, *fakeBackend]

// newHarness serves a front-end with cfg in front of a fresh fake backend; tweak adjusts its
// Env, then each of with the server, before it serves.
func newHarness(t *testing.T, cfg Config, tweak func(*login.Env), with ...func(*Server)) *harness {
	t.Helper()
	return logintest.NewHarness(t, newFakeBackend(t, ""), tweak, func(env *login.Env, port int) *Server {
		if cfg.BackendPort == 0 {
			cfg.BackendPort = port
		}
		return NewServer(cfg, env)
	}, with...)
}

type client = logintest.Client

// startCore starts a front-end for logintest.RunCore.
func startCore(t *testing.T, cfg login.Config) logintest.Running {
	return newHarness(t, Config{Config: cfg}, nil).Running()
}
