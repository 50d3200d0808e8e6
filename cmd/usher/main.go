// Command usher is a director for mail clusters: it proxies IMAP logins to
// each user's one backend and is driven through Dovecot's doveadm HTTP API.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usher: a director for mail clusters (Dovecot 2.3 director compatible)

Usage:
  usher serve [-c FILE]       run the director with the given config file
  usher serve -dev            run a demo director with two built-in backends on loopback
  usher import -a SOCKET      carry a running Dovecot 2.3 director's hosts and users over
  usher config check [-c FILE]
                              check the config; print the settings that differ from defaults
  usher version               print the version
  usher help                  this text

Admin commands (usher director status, usher who, ...) talk to a running usher
through its doveadm HTTP API; see "usher help admin".
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 64
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "import":
		return importCmd(args[1:], stdout, stderr)
	case "version", "--version", "-V":
		fmt.Fprintln(stdout, "usher", version)
		return 0
	case "help", "-h", "--help":
		if len(args) > 1 && args[1] == "admin" {
			return adminHelp(stdout)
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	return admin(args, stdout, stderr)
}
