package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "extra.conf"), []byte("director_user_expire = 30 min\n"), 0o600)
	conf := filepath.Join(dir, "usher.conf")
	write := func(s string) {
		if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`listen = 127.0.0.1
director_user_expire = 900 s
doveadm_password = s3cret
ssl = yes
mail_location = maildir:~/x
!include extra.conf
service doveadm {
  inet_listener http {
    port = 8080
  }
}
`)
	var out, errb bytes.Buffer
	if code := run([]string{"config", "check", "-c", conf}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := out.String()
	for _, want := range []string{"listen = 127.0.0.1\n", "director_user_expire = 30 min\n", "doveadm_password = # hidden\n",
		"service doveadm {\n  inet_listener http {\n    port = 8080\n  }\n}\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"s3cret", "ssl =", "900 s", "mail_location"} {
		if strings.Contains(got, not) {
			t.Errorf("output has %q:\n%s", not, got)
		}
	}
	if !strings.Contains(errb.String(), "usher.conf:5: mail_location") {
		t.Errorf("no warning with file:line for mail_location: %q", errb.String())
	}

	write("listen = 127.0.0.1\n\ndirector_user_expire = soon\n")
	out.Reset()
	errb.Reset()
	if code := run([]string{"config", "check", "-c", conf}, &out, &errb); code != exConfig {
		t.Fatalf("bad file: exit %d, want %d", code, exConfig)
	}
	if !strings.Contains(errb.String(), "usher.conf:3: director_user_expire") || out.Len() != 0 {
		t.Errorf("bad file: stdout %q stderr %q", out.String(), errb.String())
	}
}
