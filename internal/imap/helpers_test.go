package imap

import (
	"bufio"
	"encoding/base64"
	"net"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// fakeBackend is a tiny IMAP server: it accepts password "pass" for any user and, once logged
// in, answers NOOP and LOGOUT. It records every line it receives.
type fakeBackend struct {
	*logintest.Backend
	banner string
}

func newFakeBackend(t *testing.T, banner string) *fakeBackend {
	t.Helper()
	if banner == "" {
		banner = "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID LITERAL+ AUTH=PLAIN] ready."
	}
	b := &fakeBackend{banner: banner}
	b.Backend = logintest.NewBackend(t, b.serve)
	return b
}

func (b *fakeBackend) serve(c net.Conn) {
	defer c.Close()
	bw := bufio.NewWriter(c)
	say := func(s string) { bw.WriteString(s + "\r\n"); bw.Flush() }
	rd := &reader{br: bufio.NewReader(c), maxCommand: 1 << 16, maxLiteral: 1 << 16,
		cont: func() error { say("+ OK"); return nil }}
	say(b.banner)
	loggedIn := false
	for {
		pieces, err := rd.readCommand()
		if err != nil {
			return
		}
		var raw []string
		for _, p := range pieces {
			raw = append(raw, p.data)
		}
		b.Record(strings.Join(raw, "|"))
		cmd, err := parseCommand(pieces)
		if err != nil {
			say(cmd.tag + " BAD syntax")
			continue
		}
		user, pass := "", ""
		switch {
		case cmd.name == "CAPABILITY":
			say("* CAPABILITY " + strings.TrimSuffix(strings.TrimPrefix(b.banner, "* OK [CAPABILITY "), "] ready."))
			say(cmd.tag + " OK done")
			continue
		case cmd.name == "ID":
			say("* ID NIL")
			say(cmd.tag + " OK ID completed.")
			continue
		case cmd.name == "NOOP":
			say(cmd.tag + " OK NOOP done")
			continue
		case cmd.name == "LOGOUT":
			say("* BYE bye")
			say(cmd.tag + " OK Logout completed.")
			return
		case cmd.name == "LOGIN" && !loggedIn:
			user, pass = cmd.args[0].s, cmd.args[1].s
		case cmd.name == "AUTHENTICATE" && !loggedIn:
			ir := ""
			if len(cmd.args) == 2 {
				ir = cmd.args[1].s
			} else {
				say("+ ")
				ir, _ = rd.readLine(1 << 16)
			}
			dec, _ := base64.StdEncoding.DecodeString(ir)
			if parts := strings.Split(string(dec), "\x00"); len(parts) == 3 {
				user, pass = parts[1], parts[2]
			}
		default:
			say(cmd.tag + " BAD unknown")
			continue
		}
		switch {
		case user == "busy":
			say(cmd.tag + " NO [INUSE] Mailbox is locked.")
		case user == "tempfail":
			say(cmd.tag + " NO [UNAVAILABLE] Internal error occurred.")
		case pass == "pass" || pass == "p\"a\\ss" || pass == "pässwörd":
			loggedIn = true
			say("* OK untagged noise")
			say(cmd.tag + " OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")
		default:
			say(cmd.tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
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
