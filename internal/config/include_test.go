package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestIncludeRelativeAndInSection(t *testing.T) {
	files := map[string]string{
		"conf.d/a.conf":        "login_greeting = from a\n!include sub/b.conf\n",
		"conf.d/sub/b.conf":    "doveadm_api_key = from b\n",
		"conf.d/listener.conf": "inet_listener imap {\n  port = 1143\n}\n",
	}
	s, _ := mustParse(t, `!include conf.d/a.conf
service imap-login {
  !include conf.d/listener.conf
}
`, files)
	if s.LoginGreeting != "from a" || s.DoveadmAPIKey != "from b" {
		t.Errorf("greeting %q, key %q", s.LoginGreeting, s.DoveadmAPIKey)
	}
	l, ok := s.Listener("imap-login", "imap")
	if !ok || l.Port != 1143 || l.File != "conf.d/listener.conf" || l.Line != 1 {
		t.Errorf("listener = %+v", l)
	}
}

func TestIncludeErrors(t *testing.T) {
	deep := map[string]string{}
	for i := range maxIncludeDepth + 2 {
		deep[fmt.Sprintf("d%d.conf", i)] = fmt.Sprintf("!include d%d.conf\n", i+1)
	}
	deep[fmt.Sprintf("d%d.conf", maxIncludeDepth+2)] = ""
	for _, c := range []struct {
		name  string
		text  string
		files map[string]string
		msg   string
	}{
		{"missing", "\n!include nope.conf\n", nil, "usher.conf:2: !include nope.conf: No matches"},
		{"self loop", "!include usher.conf\n", nil, "usher.conf:1: Recursive include file: usher.conf"},
		{"loop", "a = 1\n!include a.conf\n", map[string]string{"a.conf": "\n\n!include b.conf\n", "b.conf": "!include ./a.conf\n"},
			"b.conf:1: Recursive include file: a.conf"},
		{"depth", "!include d0.conf\n", deep,
			fmt.Sprintf("d%d.conf:1: includes nested more than %d deep", maxIncludeDepth-2, maxIncludeDepth)},
		{"error inside", "!include a.conf\n", map[string]string{"a.conf": "x = 1\n\n}\n"}, "a.conf:3: Unexpected '}'"},
		{"unclosed inside", "s {\n!include a.conf\n}\n", map[string]string{"a.conf": "t {\n"},
			"a.conf:1: Missing '}': section t is not closed"},
		{"closing parent", "s {\n!include a.conf\n", map[string]string{"a.conf": "}\n"}, "a.conf:1: Unexpected '}'"},
	} {
		t.Run(c.name, func(t *testing.T) { wantError(t, c.text, c.files, c.msg) })
	}
}

func TestIncludeTry(t *testing.T) {
	s, _ := mustParse(t, "!include_try nope.conf\n!include_try \"b.conf\"\n", map[string]string{"b.conf": "login_greeting = b\n"})
	if s.LoginGreeting != "b" {
		t.Errorf("greeting = %q", s.LoginGreeting)
	}
}

// Without a readFile, includes find nothing and the error says so.
func TestIncludeWithoutReader(t *testing.T) {
	_, _, err := Parse("usher.conf", []byte("!include x.conf\n"), nil)
	if err == nil || err.Error() != "usher.conf:1: !include x.conf: No matches" {
		t.Fatalf("err = %v", err)
	}
}

// Fan-out (each file including the next several times) must hit the file
// limit instead of growing exponentially.
func TestIncludeFanOutBounded(t *testing.T) {
	files := map[string]string{}
	for i := range 10 {
		files[fmt.Sprintf("f%d.conf", i)] = strings.Repeat(fmt.Sprintf("!include f%d.conf\n", i+1), 4)
	}
	files["f10.conf"] = "a = 1\n"
	_, _, err := Parse("usher.conf", []byte("!include f0.conf\n"), memFiles(files))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d configuration files", maxFiles)) {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadGlobIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("usher.conf", "!include conf.d/*.conf\n!include_try local.d/*.conf\nssl_key = <certs/key.pem\n")
	write("conf.d/10-a.conf", "director_servers = 127.0.0.1\n")
	write("conf.d/20-b.conf", "director_servers = $director_servers 127.0.0.2\n")
	write("conf.d/ignored.txt", "garbage\n")
	write("certs/key.pem", "SECRET\n")
	s, warns, err := Load(filepath.Join(dir, "usher.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if !slices.Equal(s.DirectorServers, []string{"127.0.0.1", "127.0.0.2"}) {
		t.Errorf("director_servers = %v (glob order must be sorted)", s.DirectorServers)
	}
	if s.SSLKey != "SECRET\n" {
		t.Errorf("ssl_key = %q", s.SSLKey)
	}

	write("usher.conf", "\n!include nothing/*.conf\n")
	_, _, err = Load(filepath.Join(dir, "usher.conf"))
	if want := filepath.Join(dir, "usher.conf") + ":2: !include nothing/*.conf: No matches"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load(filepath.Join(t.TempDir(), "nope.conf"))
	if err == nil || !strings.Contains(err.Error(), "nope.conf: Can't open configuration") {
		t.Fatalf("err = %v", err)
	}
}
