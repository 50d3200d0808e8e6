package config

import (
	"fmt"
	"strings"
	"testing"
)

func tree(t *testing.T, text string, files map[string]string) (*Node, []Warning) {
	t.Helper()
	root, warns, err := ParseTree("usher.conf", []byte(text), memFiles(files))
	if err != nil {
		t.Fatalf("ParseTree: %v", err)
	}
	return root, warns
}

func value(t *testing.T, n *Node, key string) string {
	t.Helper()
	s, ok := n.Setting(key)
	if !ok {
		t.Fatalf("no setting %s", key)
	}
	return s.Value
}

func TestValues(t *testing.T) {
	root, warns := tree(t, strings.Join([]string{
		`a = plain value   `,
		`b=tight`,
		`c = value # comment`,
		`d = "quoted # not a comment" # comment`,
		`e = "with \"escapes\" and \\ backslash"`,
		`f = 'single # quoted'`,
		`g = "unbalanced`,
		`h = "abc" x`,
		`i =`,
		"j =\tvalue\twith\ttabs\t",
		`k = a \`,
		`   b\`,
		`# a comment inside a continuation is skipped`,
		`  c`,
		`l = x`,
		`l = last wins`,
	}, "\r\n"), nil)
	for key, want := range map[string]string{
		"a": "plain value",
		"b": "tight",
		"c": "value",
		"d": "quoted # not a comment",
		"e": `with "escapes" and \ backslash`,
		"f": "single # quoted",
		"g": `"unbalanced`,
		"h": `"abc" x`,
		"i": "",
		"j": "value\twith\ttabs",
		"k": "a b c",
		"l": "last wins",
	} {
		if got := value(t, root, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if n, _ := root.Setting("l"); n.Line != 16 {
		t.Errorf("l line = %d, want 16", n.Line)
	}
	if n, _ := root.Setting("k"); n.Line != 11 {
		t.Errorf("continued line k reported at %d, want its first line 11", n.Line)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
}

func TestAmbiguousHashWarns(t *testing.T) {
	root, warns := tree(t, "\nkey = a#b\n", nil)
	if got := value(t, root, "key"); got != "a" {
		t.Errorf("key = %q, want %q", got, "a")
	}
	if len(warns) != 1 || warns[0].File != "usher.conf" || warns[0].Line != 2 {
		t.Errorf("warnings = %v", warns)
	}
}

func TestSections(t *testing.T) {
	root, _ := tree(t, `
outer label {
  inner {
    x = 1
  }
  quoted "a b" {
  }
}   
top = 2
`, nil)
	if len(root.Children) != 2 {
		t.Fatalf("root children = %d", len(root.Children))
	}
	outer := root.Children[0]
	if !outer.Section || outer.Key != "outer" || outer.Label != "label" || outer.Line != 2 || len(outer.Children) != 2 {
		t.Fatalf("outer = %+v", outer)
	}
	inner := outer.Children[0]
	if inner.Label != "" || value(t, inner, "x") != "1" || inner.Children[0].Line != 4 {
		t.Errorf("inner = %+v", inner)
	}
	if outer.Children[1].Label != "a b" {
		t.Errorf("quoted label = %q", outer.Children[1].Label)
	}
	if value(t, root, "top") != "2" {
		t.Error("top-level setting after a section lost")
	}
}

func TestVariables(t *testing.T) {
	t.Setenv("USHER_TEST_VAR", "from-env")
	root, _ := tree(t, `
login_greeting = hello
director_servers = $login_greeting   world $director_user_expire
listen = $ENV:USHER_TEST_VAR $ENV:USHER_TEST_UNSET_VAR x
mail_location = "$login_greeting"
mail_home = "$login_greeting x
doveadm_password = pa$$word
protocols = $protocols sieve
sect {
  inner = $login_greeting
  login_greeting = shadow
  inner2 = $login_greeting
}
`, nil)
	for key, want := range map[string]string{
		"director_servers": "hello world 15 mins",
		"listen":           "from-env  x",
		"mail_location":    "$login_greeting",
		"mail_home":        `"$login_greeting x`,
		"doveadm_password": "pa$$word",
		"protocols":        "imap pop3 lmtp sieve",
	} {
		if got := value(t, root, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	sect := root.Children[len(root.Children)-1]
	if value(t, sect, "inner") != "hello" || value(t, sect, "inner2") != "shadow" {
		t.Errorf("section variables = %+v", sect.Children)
	}
}

func TestFileValue(t *testing.T) {
	files := map[string]string{
		"certs/cert.pem":     "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n",
		"/etc/usher/key.pem": "KEY\n",
		"certs/inc.conf":     "ssl_ca = <ca.pem\n",
		"certs/ca.pem":       "CA",
	}
	root, _ := tree(t, "ssl_cert = <certs/cert.pem\nssl_key = </etc/usher/key.pem\n!include certs/inc.conf\n", files)
	if got := value(t, root, "ssl_cert"); got != files["certs/cert.pem"] {
		t.Errorf("ssl_cert = %q", got)
	}
	if got := value(t, root, "ssl_key"); got != "KEY\n" {
		t.Errorf("ssl_key = %q", got)
	}
	if got := value(t, root, "ssl_ca"); got != "CA" {
		t.Errorf("ssl_ca (relative to the including file) = %q", got)
	}
}

func TestSyntaxErrors(t *testing.T) {
	long := "a = " + strings.Repeat("x", MaxLineLength)
	for _, c := range []struct{ text, msg string }{
		{"a = 1\n}\n", "usher.conf:2: Unexpected '}'"},
		{"a {\n}\n} \n", "usher.conf:3: Unexpected '}'"},
		{"a {\n  b {\n  }\n", "usher.conf:1: Missing '}': section a is not closed"},
		{"x = 1\nservice imap {\n", "usher.conf:2: Missing '}': section service imap is not closed"},
		{"a {\n}}\n", "usher.conf:2: Garbage after '}'"},
		{"inet_listener imap { port = 1 }\n", "usher.conf:1: Garbage after '{'"},
		{"\nfoo\n", "usher.conf:2: Expecting '=' or '{' after foo"},
		{"foo bar\n", "usher.conf:1: Expecting '=' or '{' after foo"},
		{"= 3\n", "usher.conf:1: missing setting or section name"},
		{"a = $nosuch\n", "usher.conf:1: Unknown variable: $nosuch"},
		{"a = 1\n\nb = x \\\n", "usher.conf:3: line continued with '\\' at end of file"},
		{"\n" + long + "\n", fmt.Sprintf("usher.conf:2: line longer than %d bytes", MaxLineLength)},
		{"ssl_cert = <missing.pem\n", "usher.conf:1: ssl_cert: Can't open file missing.pem: file does not exist"},
		{"ssl_cert = <\n", "usher.conf:1: ssl_cert: missing file name after '<'"},
		{"!includ x\n", "usher.conf:1: Unknown directive !includ"},
		{"!include\n", "usher.conf:1: !include: missing file name"},
	} {
		wantError(t, c.text, nil, c.msg)
	}
}

func TestContinuationLimit(t *testing.T) {
	line := strings.Repeat("x", 1000) + " \\\n"
	text := "a = " + strings.Repeat(line, MaxLineLength/1000+1) + "end\n"
	wantError(t, "\n"+text, nil, fmt.Sprintf("usher.conf:2: continued line longer than %d bytes", MaxLineLength))
}

// Doubling a value through $var must stop at the value limit, not eat memory.
func TestVariableGrowthBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("a = xxxxxxxxxxxxxxxx\n")
	for range 40 {
		b.WriteString("a = $a $a\n")
	}
	_, _, err := ParseTree("usher.conf", []byte(b.String()), nil)
	if err == nil || !strings.Contains(err.Error(), "value longer than") {
		t.Fatalf("err = %v", err)
	}
}
