package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func parseAll(data []byte, maxCommand, maxLiteral int) ([]*command, []error) {
	conts := 0
	r := &reader{br: bufio.NewReaderSize(bytes.NewReader(data), 16), maxCommand: maxCommand,
		maxLiteral: maxLiteral, cont: func() error { conts++; return nil }}
	var cmds []*command
	var errs []error
	for {
		pieces, err := r.readCommand()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				errs = append(errs, err)
			}
			return cmds, errs
		}
		cmd, err := parseCommand(pieces)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cmds = append(cmds, cmd)
	}
}

func TestParser(t *testing.T) {
	cmds, errs := parseAll([]byte("a LOGIN {2}\r\nu1 {4+}\r\np\x00ss\r\nb id (\"k\" NIL \"x\" \"y\\\"z\")\r\n"), 1000, 100)
	if len(errs) != 0 || len(cmds) != 2 {
		t.Fatalf("cmds %v errs %v", cmds, errs)
	}
	if c := cmds[0]; c.name != "LOGIN" || c.args[0].s != "u1" || c.args[1].s != "p\x00ss" {
		t.Errorf("%+v", c)
	}
	if c := cmds[1]; c.name != "ID" || len(c.args[0].list) != 4 || !c.args[0].list[1].isNIL() || c.args[0].list[3].s != `y"z` {
		t.Errorf("%+v", c)
	}
	for in, want := range map[string]string{
		"a LOGIN u p\"x\r\n":     badAtom,
		"a LOGIN \"u\" {3}x\r\n": badLiteralEOL,
		"a LOGIN \"u\r\n":        badGeneric,
		"+x NOOP\r\n":            badGeneric,
		"a ID ((((((x))))))\r\n": badGeneric,
	} {
		_, errs := parseAll([]byte(in), 1000, 100)
		var se *syntaxError
		if len(errs) != 1 || !errors.As(errs[0], &se) || se.text != want {
			t.Errorf("%q: %v, want %q", in, errs, want)
		}
	}
}

// FuzzPreLogin feeds arbitrary client bytes through framing and tokenizing: no panics, limits
// hold, and every parsed command has a tag and a name.
func FuzzPreLogin(f *testing.F) {
	for _, s := range []string{
		"a LOGIN u1 pass\r\n",
		"a LOGIN {2}\r\nu1 {4+}\r\npass\r\n",
		"b AUTHENTICATE PLAIN AHUxAHBhc3M=\r\n",
		"c ID (\"name\" \"x\" \"v\" NIL)\r\nd ID NIL\r\n",
		"\r\n* \r\n{5}\r\nabcde\r\n",
		"e LOGIN \"a\\\"b\" \"c\\\\\"\n",
		"f ID ((()))\r\ng LOGIN {99999999999}\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxCommand, maxLiteral = 256, 64
		cmds, _ := parseAll(data, maxCommand, maxLiteral)
		for _, c := range cmds {
			if c.tag == "" || c.name == "" {
				t.Fatalf("empty tag or name: %+v", c)
			}
			size := 0
			for _, a := range c.args {
				size += len(a.s)
			}
			if size > maxCommand {
				t.Fatalf("command of %d bytes passed a %d limit", size, maxCommand)
			}
		}
	})
}
