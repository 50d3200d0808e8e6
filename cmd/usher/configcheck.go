package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/usher-mail/usher/internal/config"
)

const configUsage = `usage: usher config check [-c FILE]

Parses the configuration as "usher serve" would and prints the settings that
differ from the defaults, in the file's syntax, with secrets hidden (like
"doveconf -n"). Warnings (Dovecot settings a director ignores) go to stderr.
An error is reported as FILE:LINE: message, with exit status 78.

`

func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, configUsage)
		return exUsage
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, configUsage); fs.PrintDefaults() }
	conf := fs.String("c", defaultConfig, "config file (Dovecot 2.3 syntax)")
	if err := fs.Parse(args[1:]); err != nil {
		return exUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exUsage
	}
	_, warns, err := config.Load(*conf)
	for _, w := range warns {
		fmt.Fprintf(stderr, "Warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exConfig
	}
	root, err := config.LoadTree(*conf)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exConfig
	}
	fmt.Fprintf(stdout, "# usher %s: %s\n# settings that differ from the defaults\n", version, *conf)
	writeEffective(stdout, root)
	return 0
}

// writeEffective prints the top-level settings usher reads whose effective
// (last) value is not the default, in the order they first appear, then the
// sections as written.
func writeEffective(w io.Writer, root *config.Node) {
	var keys []string
	last := map[string]string{}
	for _, n := range root.Children {
		if n.Section || !config.Interpreted(n.Key) {
			continue
		}
		if _, seen := last[n.Key]; !seen {
			keys = append(keys, n.Key)
		}
		last[n.Key] = n.Value
	}
	for _, k := range keys {
		if !config.IsDefault(k, last[k]) {
			writeSetting(w, "", k, last[k])
		}
	}
	for _, n := range root.Children {
		if n.Section {
			writeSection(w, "", n)
		}
	}
}

func writeSection(w io.Writer, indent string, n *config.Node) {
	head := n.Key
	if n.Label != "" {
		head += " " + n.Label
	}
	fmt.Fprintf(w, "%s%s {\n", indent, head)
	for _, c := range n.Children {
		if c.Section {
			writeSection(w, indent+"  ", c)
		} else {
			writeSetting(w, indent+"  ", c.Key, c.Value)
		}
	}
	fmt.Fprintf(w, "%s}\n", indent)
}

// secretWords mark settings whose value must not be printed, as doveconf
// hides passwords and keys.
var secretWords = []string{"password", "secret", "api_key", "ssl_key"}

func writeSetting(w io.Writer, indent, key, value string) {
	if value != "" && slices.ContainsFunc(secretWords, func(s string) bool { return strings.Contains(key, s) }) {
		fmt.Fprintf(w, "%s%s = # hidden\n", indent, key)
		return
	}
	if strings.Contains(value, "\n") { // a <file value: its first line says what it is
		value, _, _ = strings.Cut(value, "\n")
		value += " ..."
	}
	fmt.Fprintf(w, "%s%s = %s\n", indent, key, value)
}
