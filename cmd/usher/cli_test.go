package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/usher-mail/usher/internal/doveadm"
)

var update = flag.Bool("update", false, "rewrite testdata/cli/*.golden")

func TestMain(m *testing.M) {
	time.Local = time.UTC // the API prints local times; goldens must not depend on TZ
	followEvery = 10 * time.Millisecond
	os.Exit(m.Run())
}

// startAPI serves a doveadm API over fake services on a loopback port.
func startAPI(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := doveadm.NewServer(doveadm.Config{Password: "pw", APIKey: "key", BaseDir: "/run/usher"}, newFakeServices())
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + l.Addr().String()
}

func runCLI(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

var portRE = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)

func checkGolden(t *testing.T, name, args, stdout, stderr string, code int) {
	t.Helper()
	got := fmt.Sprintf("$ usher %s\n# exit code: %d\n# ---- stdout ----\n%s\n# ---- stderr ----\n%s",
		args, code, stdout, portRE.ReplaceAllString(stderr, "127.0.0.1:PORT"))
	path := filepath.Join("testdata", "cli", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n%s", args, path, got)
	}
}

// TestVerbsGolden runs every verb in-process against a real API listener, in each format.
func TestVerbsGolden(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users")
	os.WriteFile(users, []byte("user001\nuser002\n"), 0o600)
	withOutput := []string{
		"director status", "director status user001", "director status nobody", "director map",
		"director map 127.0.0.11", "director map -u user001", "director map -h 12345 -f " + users,
		"director dump", "director dump -a /run/usher/director-admin", "director ring status",
		"who", "who -1", "who user0*", "who -1 127.0.0.1", "kick user002", "penalty", "penalty 127.0.0.0/8",
		"stats dump", "stats dump -f count,avg", "oldstats dump global", "proxy list", "proxy kick user001 user002",
		"director health", "director jobs", "director drain 127.0.0.11",
	}
	formats := map[string]string{"table": "", "tab": "-f tab ", "flow": "-f flow ", "json": "-f json "}
	for _, verb := range withOutput {
		for fname, fopt := range formats {
			args := fopt + verb
			name := strings.NewReplacer(" ", "_", "/", "", "*", "star", "-", "").Replace(verb) + "." + fname
			name = strings.ReplaceAll(name, strings.ReplaceAll(users, "/", ""), "USERS")
			t.Run(name, func(t *testing.T) {
				api := startAPI(t)
				stdout, stderr, code := runCLI(append([]string{"--api", api, "--password", "pw"}, strings.Fields(args)...)...)
				checkGolden(t, name, strings.ReplaceAll(args, users, "USERS"), stdout, stderr, code)
			})
		}
	}
	noOutput := []string{
		"director add 127.0.0.15", "director add -t ssd 127.0.0.15 50", "director update 127.0.0.11 10",
		"director up 127.0.0.11", "director down 10.9.9.9", "director remove 10.9.9.9", "director move user001 127.0.0.11",
		"director move user001 10.9.9.9", "director kick user001", "director kick -f alt user001",
		"director flush all", "director flush -F --max-parallel 5 10.9.9.9", "director ring add 127.0.0.30 9090",
		"director ring remove 10.9.9.9", "kick nobody", "stats reset", "oldstats dump bogus", "reload",
		"service stop pop3-login", "service stop nosuch", "director status -a /nonexistent",
		"who 10.0.0.0/8 127.0.0.0/8", "director drain 10.9.9.9", "director rebalance --max-parallel 5",
	}
	for _, verb := range noOutput {
		name := strings.NewReplacer(" ", "_", "/", "", "-", "").Replace(verb)
		t.Run(name, func(t *testing.T) {
			api := startAPI(t)
			stdout, stderr, code := runCLI(append([]string{"--api", api, "--api-key", "key"}, strings.Fields(verb)...)...)
			checkGolden(t, name, verb, stdout, stderr, code)
		})
	}
}

// TestUsage covers what never reaches the API: usage errors, help, unknown verbs.
func TestUsage(t *testing.T) {
	cases := map[string]string{
		"usage_missing":    "director move user001",
		"usage_extra":      "director up a b",
		"usage_badopt":     "director status -x",
		"usage_badint":     "director flush --max-parallel x all",
		"usage_help":       "director flush --help",
		"usage_unknown":    "frobnicate",
		"usage_partial":    "director ring",
		"usage_badformat":  "-f yaml who",
		"usage_nofile":     "director map -f /nonexistent/users",
		"usage_helpadmin":  "help admin",
		"usage_noconf":     "-c /nonexistent/usher.conf who",
		"usage_badurl":     "--api ftp://x who",
		"usage_noprogram":  "-f json",
		"usage_refused":    "--api http://127.0.0.1:1 who",
		"usage_wrongpass":  "WRONGPASS who",
		"usage_servicestp": "service stop",
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			argv := strings.Fields(args)
			if argv[0] == "WRONGPASS" {
				argv = append([]string{"--api", startAPI(t), "--password", "nope"}, argv[1:]...)
			}
			stdout, stderr, code := runCLI(argv...)
			checkGolden(t, name, args, stdout, stderr, code)
		})
	}
}

func TestAPIFromConfig(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "usher.conf")
	os.WriteFile(conf, []byte("listen = *\ndoveadm_password = pw\nservice doveadm {\n  inet_listener http {\n    port = 8080\n    ssl = yes\n  }\n}\n"), 0o600)
	g := globals{conf: conf, confSet: true}
	var errb bytes.Buffer
	c, code := g.client(&errb)
	if c == nil {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if c.URL != "https://127.0.0.1:8080" || c.Password != "pw" {
		t.Errorf("got %q %q", c.URL, c.Password)
	}
	t.Setenv("USHER_API", "http://doveadm:secret@[::1]:9000")
	g = globals{conf: filepath.Join(dir, "missing.conf")}
	if c, _ = g.client(&errb); c == nil || c.URL != "http://[::1]:9000" || c.Password != "secret" {
		t.Errorf("USHER_API: got %+v", c)
	}
}

// TestConfigAddressAndCredentials: the end-to-end path through a config file.
func TestConfigEndToEnd(t *testing.T) {
	api := startAPI(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(api, "http://"))
	conf := filepath.Join(t.TempDir(), "usher.conf")
	os.WriteFile(conf, []byte("doveadm_api_key = key\nservice doveadm {\n  inet_listener http {\n    address = 127.0.0.1\n    port = "+port+"\n  }\n}\n"), 0o600)
	stdout, stderr, code := runCLI("-c", conf, "-f", "tab", "director", "status")
	if code != 0 || !strings.HasPrefix(stdout, "mail server ip\ttag\t") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
