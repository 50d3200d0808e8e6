package sieve

import (
	"bufio"
	"encoding/base64"
	"net"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
	"github.com/usher-mail/usher/internal/login/logintest"
)

// fakeBackend is a tiny ManageSieve server: it accepts password "pass" for any user and,
// once logged in, answers LISTSCRIPTS and LOGOUT. It records every line it receives.
type fakeBackend struct {
	*logintest.Backend
	caps []string
}

func newFakeBackend(t *testing.T, caps ...string) *fakeBackend {
	t.Helper()
	if caps == nil {
		caps = []string{`"IMPLEMENTATION" "Dovecot Pigeonhole"`, `"SASL" "PLAIN LOGIN"`, `"VERSION" "1.0"`, `"XCLIENT"`}
	}
	b := &fakeBackend{caps: caps}
	b.Backend = logintest.NewBackend(t, b.serve)
	return b
}

func (b *fakeBackend) serve(c net.Conn) {
	defer c.Close()
	bw := bufio.NewWriter(c)
	rd := &reader{br: bufio.NewReader(c), maxCommand: 1 << 16}
	say := func(s ...string) {
		for _, l := range s {
			bw.WriteString(l + "\r\n")
		}
		bw.Flush()
	}
	say(append(b.caps, `OK "Dovecot ready."`)...)
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
			say(`NO "syntax"`)
			continue
		}
		switch {
		case cmd.name == "XCLIENT":
			say(`OK "Updated"`)
		case cmd.name == "LISTSCRIPTS" && loggedIn:
			say(`"test" ACTIVE`, `OK "Listscripts completed."`)
		case cmd.name == "LOGOUT":
			say(`OK "Logout completed."`)
			return
		case cmd.name == "AUTHENTICATE" && !loggedIn && len(cmd.args) == 2:
			dec, _ := base64.StdEncoding.DecodeString(cmd.args[1].s)
			parts := strings.Split(string(dec), "\x00")
			switch {
			case len(parts) != 3:
				say(`NO "Authentication failed."`)
			case parts[1] == "busy":
				say(`NO (TRYLATER) "Mailbox is locked."`)
			case parts[2] == "pass":
				loggedIn = true
				say(`OK "Logged in."`)
			default:
				say(`NO "Authentication failed."`)
			}
		default:
			say(`NO "Unknown command."`)
		}
	}
}

type harness = logintest.Harness[*Server, *fakeBackend]

// newHarness serves a front-end with cfg in front of a fresh fake backend; tweak adjusts its
// Env, then each of with the server, before it serves.
func newHarness(t *testing.T, cfg Config, tweak func(*login.Env), with ...func(*Server)) *harness {
	t.Helper()
	return logintest.NewHarness(t, newFakeBackend(t), tweak, func(env *login.Env, port int) *Server {
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
