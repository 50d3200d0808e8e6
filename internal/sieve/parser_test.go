package sieve

import (
	"bufio"
	"errors"
	"strings"
	"testing"

	"github.com/usher-mail/usher/internal/login"
)

func parse(t *testing.T, input string) (*command, error) {
	t.Helper()
	r := &reader{br: bufio.NewReader(strings.NewReader(input)), maxCommand: 1024}
	pieces, err := r.readCommand()
	if err != nil {
		return nil, err
	}
	return parseCommand(pieces)
}

func TestParseCommand(t *testing.T) {
	cmd, err := parse(t, "authenticate \"PLAIN\" {4+}\r\na\"\\b\r\n")
	if err != nil || cmd.name != "AUTHENTICATE" || len(cmd.args) != 2 || cmd.args[1].s != "a\"\\b" || !cmd.args[1].string {
		t.Fatalf("%+v %v", cmd, err)
	}
	cmd, err = parse(t, "NOOP {1}\r\nx \"y\"\r\n")
	if err != nil || len(cmd.args) != 2 || cmd.args[0].s != "x" || cmd.args[1].s != "y" {
		t.Fatalf("%+v %v", cmd, err)
	}
	cmd, err = parse(t, `XCLIENT ADDR=1.2.3.4 "q\\\"x"`+"\r\n")
	if err != nil || cmd.args[0].string || cmd.args[0].s != "ADDR=1.2.3.4" || cmd.args[1].s != `q\"x` {
		t.Fatalf("%+v %v", cmd, err)
	}
	for _, bad := range []string{"\r\n", "NOOP \r\n", "NOOP  \"x\"\r\n", "\"NOOP\"\r\n", "NOOP \"x\r\n",
		"NOOP \"\\x\"\r\n", "NOOP {1}x\r\n", "NOOP {1}\r\nxy\r\n", "NOOP *\r\n"} {
		if _, err := parse(t, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := parse(t, "NOOP {2000+}\r\n"); !errors.Is(err, errLineTooLong) {
		t.Errorf("big literal: %v", err)
	}
}

func TestQuote(t *testing.T) {
	if got := quote(`a"b\c`); got != `"a\"b\\c"` {
		t.Error(got)
	}
	if got := quote("a\r\nb"); got != "{4}\r\na\r\nb" {
		t.Error(got)
	}
}

// FuzzSieveCommand feeds arbitrary client input through the framing and the tokenizer the
// pre-login loop uses; none may panic, and a parsed command must be well formed.
func FuzzSieveCommand(f *testing.F) {
	for _, s := range []string{
		"CAPABILITY\r\n", "AUTHENTICATE \"PLAIN\" \"AHUxAHBhc3M=\"\r\n", "AUTHENTICATE \"PLAIN\" {12+}\r\nAHUxAHBhc3M=\r\n",
		"NOOP {3}\r\nabc\r\n", "XCLIENT ADDR=::1 TTL=3\r\n", "\"*\"\r\n", "NOOP \"a\\\"b\"\r\n", "{99999999+}\r\n", "\x00\xff{\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &reader{br: bufio.NewReader(strings.NewReader(string(data))), maxCommand: 256}
		for {
			pieces, err := r.readCommand()
			if err != nil {
				return
			}
			total := 0
			for _, p := range pieces {
				total += len(p.data)
			}
			if total > 256 {
				t.Fatalf("command of %d bytes passed a limit of 256", total)
			}
			cmd, err := parseCommand(pieces)
			if err != nil {
				continue
			}
			if cmd.name == "" || cmd.name != strings.ToUpper(cmd.name) {
				t.Fatalf("name %q", cmd.name)
			}
			for _, a := range cmd.args {
				if !a.string && (a.s == "" || strings.ContainsAny(a.s, " \"{")) {
					t.Fatalf("atom %q", a.s)
				}
			}
			if x, ok := login.ParseXCLIENT(cmd.name); ok && x.TTL > 255 {
				t.Fatal("ttl")
			}
		}
	})
}
