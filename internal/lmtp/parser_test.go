package lmtp

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line, verb, path, params, err string
	}{
		{line: "LHLO mx.example", verb: "LHLO"},
		{line: "mail from:<a@b.test>", verb: "MAIL", path: "a@b.test"},
		{line: "MAIL FROM: <a@b.test> BODY=8BITMIME size=10", verb: "MAIL", path: "a@b.test", params: "BODY=8BITMIME SIZE=10"},
		{line: "MAIL FROM:<>", verb: "MAIL", path: ""},
		{line: "RCPT TO:<@relay.test,@r2.test:u@d.test>", verb: "RCPT", path: "u@d.test"},
		{line: `RCPT TO:<"odd >local"@d.test>`, verb: "RCPT", path: `"odd >local"@d.test`},
		{line: "RCPT TO:<postmaster>", verb: "RCPT", path: "postmaster"},
		{line: "RCPT TO:<>", err: "501 5.5.4 Invalid TO: Empty path not allowed"},
		{line: "RCPT TO:u@d.test", err: "501 5.5.4 Invalid TO: Missing '<' at beginning of path"},
		{line: "RCPT TO:<u@d.test", err: "501 5.5.4 Invalid TO: Missing '>' at end of path"},
		{line: "RCPT TO:<u@d.test>x", err: "501 5.5.4 Invalid TO: Invalid character after path"},
		{line: "RCPT TO:<u@>", err: "501 5.5.4 Invalid TO: Invalid address"},
		{line: "RCPT <u@d.test>", err: "501 5.5.4 Invalid parameters"},
		{line: "RCPT TO:<u@d.test> A=1 A=2", err: "501 5.5.4 Invalid parameters"},
		{line: "RCPT TO:<u@d.test> =x", err: "501 5.5.4 Invalid parameters"},
		{line: "", err: "500 5.5.2 Invalid command syntax"},
		{line: "Subject: x", err: "500 5.5.2 Invalid command syntax"},
	} {
		cmd, err := parseCommand(tc.line)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		var params []string
		for _, k := range []string{"BODY", "SIZE"} {
			if v, ok := cmd.params[k]; ok {
				params = append(params, k+"="+v)
			}
		}
		if cmd.verb != tc.verb || cmd.path != tc.path || strings.Join(params, " ") != tc.params {
			t.Errorf("%q: %+v", tc.line, cmd)
		}
	}
}

func TestParseBDAT(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		size int64
		last bool
		ok   bool
	}{
		{"10", 10, false, true}, {"0 LAST", 0, true, true}, {"5 last", 5, true, true},
		{"", 0, false, false}, {"-1", 0, false, false}, {"5 FIRST", 0, false, false},
		{"99999999999999999999", 0, false, false}, {"1 LAST x", 0, false, false},
	} {
		size, last, err := parseBDAT(tc.arg)
		if (err == nil) != tc.ok || tc.ok && (size != tc.size || last != tc.last) {
			t.Errorf("%q: %d %v %v", tc.arg, size, last, err)
		}
	}
}

func TestUserFor(t *testing.T) {
	for _, tc := range []struct{ format, rcpt, want string }{
		{"%Lu", "User003@Anchor.Test", "user003@anchor.test"},
		{"%Ln", "User003@anchor.test", "user003"},
		{"%Ln", "user003+box@anchor.test", "user003"},
		{"%u", "Mixed+x@D.test", "Mixed@D.test"},
		{"%n-%d", "a@b.test", "a-b.test"},
		{"%L{user}", "A@B", "a@b"},
		{"%{username}@%Ud", "a@b.test", "a@B.TEST"},
		{"%Lu", "postmaster", "postmaster"},
		{"%Lu", `"Odd Name"@x.test`, "odd name@x.test"},
		{"100%%", "a@b", "100%"},
		{"%Lu", "+detail@x.test", "+detail@x.test"},
	} {
		got, err := userFor(tc.format, "+", tc.rcpt)
		if err != nil || got != tc.want {
			t.Errorf("%s %s: %q %v, want %q", tc.format, tc.rcpt, got, err, tc.want)
		}
	}
	for _, f := range []string{"%x", "%{nope}", "%{user", "%", "%L"} {
		if _, err := userFor(f, "+", "a@b"); err == nil {
			t.Errorf("%q: no error", f)
		}
	}
}

func TestDotWriter(t *testing.T) {
	for _, tc := range []struct {
		chunks []string
		want   string
	}{
		{nil, ".\r\n"},
		{[]string{"a\r\n"}, "a\r\n.\r\n"},
		{[]string{".a\r\n.\r\nb"}, "..a\r\n..\r\nb\r\n.\r\n"},
		{[]string{"a\r", "\n.b\n"}, "a\r\n..b\r\n.\r\n"},
		{[]string{"a\r"}, "a\r\n.\r\n"},
		{[]string{"x", ".y\n", "."}, "x.y\r\n..\r\n.\r\n"},
	} {
		var buf bytes.Buffer
		d := dotWriter{w: bufio.NewWriter(&buf)}
		for _, c := range tc.chunks {
			if err := d.Write([]byte(c)); err != nil {
				t.Fatal(err)
			}
		}
		d.Close()
		if buf.String() != tc.want {
			t.Errorf("%q: %q, want %q", tc.chunks, buf.String(), tc.want)
		}
	}
}

func TestXclientCommands(t *testing.T) {
	fields := [][2]string{{"ADDR", "192.0.2.1"}, {"HELO", "a b+c"}, {"LOGIN", strings.Repeat("x", 600)}}
	got := xclientCommands(fields, []string{"ADDR", "HELO", "LOGIN"})
	if len(got) != 2 || got[0] != "XCLIENT ADDR=192.0.2.1 HELO=a+20b+2Bc" || len(got[1]) < 600 {
		t.Fatalf("%q", got)
	}
	if got := xclientCommands(fields, []string{"PORT"}); len(got) != 0 {
		t.Fatalf("%q", got)
	}
}

// FuzzParseCommand: no command line crashes the parser, and what it accepts is consistent: a
// path never contains the characters that end one, and parameters are upper case.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"LHLO x", "MAIL FROM:<a@b> BODY=8BITMIME SIZE=10", "RCPT TO:<u@d>", "RCPT TO:<\"a>b\"@d>",
		"RCPT TO:<@a,@b:u@d>", "DATA", "BDAT 10 LAST", "RCPT TO:<u@d> X=", "MAIL FROM:<",
		"RCPT TO:<\"\\\">@d>", "\x00\xff", "RCPT TO:<u@d> =", "rcpt to:<a@b@c>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := parseCommand(line)
		if err != nil {
			var se *syntaxError
			if !asSyntax(err, &se) || !strings.HasPrefix(se.reply, "50") {
				t.Fatalf("%q: unexpected error %v", line, err)
			}
			return
		}
		if cmd.verb != strings.ToUpper(cmd.verb) {
			t.Fatalf("%q: verb %q", line, cmd.verb)
		}
		if cmd.verb == "MAIL" || cmd.verb == "RCPT" {
			if strings.ContainsAny(cmd.path, "\r\n\x00") {
				t.Fatalf("%q: path %q", line, cmd.path)
			}
			for k := range cmd.params {
				if k != strings.ToUpper(k) || k == "" {
					t.Fatalf("%q: param %q", line, k)
				}
			}
			if _, err := userFor("%Lu", "+", cmd.path); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
		if cmd.verb == "BDAT" {
			if n, _, err := parseBDAT(cmd.arg); err == nil && n < 0 {
				t.Fatalf("%q: size %d", line, n)
			}
		}
	})
}

func asSyntax(err error, se **syntaxError) bool {
	e, ok := err.(*syntaxError)
	*se = e
	return ok
}
