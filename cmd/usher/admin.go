package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/usher-mail/usher/internal/cli"
)

// Exit statuses of the CLI itself (sysexits.h, as doveadm uses them).
const (
	exUsage    = 64
	exNoInput  = 66
	exTempFail = 75
	exNoPerm   = 77
	exConfig   = 78
)

// globals are the options before the verb, as doveadm's `[-f formatter] [-c config]`.
type globals struct {
	format   cli.Format // "" : the command's own
	conf     string
	confSet  bool
	api      string
	password string
	apiKey   string
	insecure bool
}

func adminHelp(w io.Writer) int {
	fmt.Fprint(w, `Admin commands talk to a running usher through its doveadm HTTP API, with doveadm's
words, options and output layouts:

  usher [-f table|tab|flow|json] [-c FILE] [--api URL] [--password P | --api-key K]
        [--insecure] <command> [args]

`)
	for _, v := range verbs() {
		fmt.Fprintf(w, "  usher %s %s\n", v.name(), v.usage)
	}
	fmt.Fprint(w, `
Finding usher: --api URL, else $USHER_API, else the doveadm service's "inet_listener http"
of the config file (-c, default /etc/usher/usher.conf; https when it has ssl = yes). The
URL may carry doveadm:PASSWORD@; otherwise --password / --api-key, else doveadm_password /
doveadm_api_key of the config file.

Exit status: the command's (0, 64 usage, 68 not found, 75 temporary failure, ...).
"director dump" prints doveadm's words ("doveadm director add ...") so that its output can
be replayed with doveadm against usher's director-admin socket.
See docs/cli.md.
`)
	return 0
}

func admin(args []string, stdout, stderr io.Writer) int {
	g, rest, err := parseGlobals(args)
	if err != nil {
		fmt.Fprintf(stderr, "usher: %v\n", err)
		return exUsage
	}
	if len(rest) == 0 {
		fmt.Fprintf(stderr, "usher: missing command\n\n%s", usage)
		return exUsage
	}
	v, n := findVerb(rest)
	if v == nil {
		return unknownVerb(rest, stderr)
	}
	params, order, help, err := parseVerbArgs(v, rest[n:])
	if help {
		fmt.Fprintf(stdout, "usage: usher %s %s\n", v.name(), v.usage)
		return 0
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "usher %s: %v\nusage: usher %s %s\n", v.name(), err, v.name(), v.usage)
			return exUsage
		}
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exNoInput
	}
	client, code := g.client(stderr)
	if client == nil {
		return code
	}
	return runVerb(context.Background(), client, g, v, params, order, stdout, stderr)
}

func parseGlobals(args []string) (globals, []string, error) {
	g := globals{conf: "/etc/usher/usher.conf"}
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		name, val, hasVal := strings.Cut(a, "=")
		takes := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if strings.HasPrefix(name, "-") && !strings.HasPrefix(name, "--") && len(name) > 2 {
				return name[2:], nil // -fjson
			}
			if len(args) < 2 {
				return "", fmt.Errorf("option %s needs a value", name)
			}
			args = args[1:]
			return args[0], nil
		}
		short := name
		if !strings.HasPrefix(name, "--") && len(name) > 2 {
			short = name[:2]
		}
		var err error
		switch short {
		case "-f":
			var s string
			if s, err = takes(); err == nil {
				g.format, err = cli.ParseFormat(s)
			}
		case "-c":
			g.conf, err = takes()
			g.confSet = true
		case "--api":
			g.api, err = takes()
		case "--password":
			g.password, err = takes()
		case "--api-key":
			g.apiKey, err = takes()
		case "--insecure":
			g.insecure = true
		default:
			return g, nil, fmt.Errorf("unknown option %s", a)
		}
		if err != nil {
			return g, nil, err
		}
		args = args[1:]
	}
	return g, args, nil
}

// findVerb returns the verb whose words start args, the longest one when several do.
func findVerb(args []string) (*verb, int) {
	var best *verb
	for _, v := range verbs() {
		if len(v.words) > len(args) || (best != nil && len(v.words) <= len(best.words)) {
			continue
		}
		match := true
		for i, w := range v.words {
			match = match && args[i] == w
		}
		if match {
			best = v
		}
	}
	if best == nil {
		return nil, 0
	}
	return best, len(best.words)
}

func unknownVerb(args []string, stderr io.Writer) int {
	var near []string
	for _, v := range verbs() {
		if v.words[0] == args[0] {
			near = append(near, "  usher "+v.name()+" "+v.usage)
		}
	}
	if len(near) == 0 {
		fmt.Fprintf(stderr, "usher: unknown command %q\n\n%s", args[0], usage)
		return exUsage
	}
	fmt.Fprintf(stderr, "usher: unknown command %q; did you mean one of:\n%s\n",
		strings.Join(args, " "), strings.Join(near, "\n"))
	return exUsage
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErr(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// parseVerbArgs maps a verb's arguments to API parameters: options anywhere before "--"
// (short ones may be clustered, -Fa path), positional arguments in order, an array
// parameter taking all the rest. order lists the parameter names as given.
func parseVerbArgs(v *verb, args []string) (p map[string]any, order []string, help bool, err error) {
	p = map[string]any{}
	set := func(name string, val any) {
		if _, ok := p[name]; !ok {
			order = append(order, name)
		}
		p[name] = val
	}
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case a == "--help" || a == "-?":
			return nil, nil, true, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			o := findOpt(v, 0, name)
			if o == nil {
				return nil, nil, false, usageErr("unknown option --%s", name)
			}
			if o.kind != kBool && !hasVal {
				if i+1 >= len(args) {
					return nil, nil, false, usageErr("option --%s needs a value", name)
				}
				i++
				val = args[i]
			}
			if err := setOpt(o, val, set); err != nil {
				return nil, nil, false, err
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				o := findOpt(v, a[j], "")
				if o == nil {
					return nil, nil, false, usageErr("unknown option -%c", a[j])
				}
				if o.kind == kBool {
					set(o.param, true)
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, nil, false, usageErr("option -%c needs a value", a[j])
					}
					i++
					val = args[i]
				}
				if err := setOpt(o, val, set); err != nil {
					return nil, nil, false, err
				}
				break
			}
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) < v.required {
		return nil, nil, false, usageErr("missing arguments")
	}
	for _, pa := range v.pos {
		if len(positional) == 0 {
			break
		}
		if pa.kind == kArray {
			set(pa.param, positional)
			positional = nil
			break
		}
		set(pa.param, positional[0])
		positional = positional[1:]
	}
	if len(positional) > 0 {
		return nil, nil, false, usageErr("extraneous arguments found: %s", strings.Join(positional, " "))
	}
	return p, order, false, nil
}

func findOpt(v *verb, short byte, long string) *opt {
	for i := range v.opts {
		o := &v.opts[i]
		if (short != 0 && o.short == short) || (long != "" && o.long == long) {
			return o
		}
	}
	return nil
}

func setOpt(o *opt, val string, set func(string, any)) error {
	switch o.kind {
	case kInt:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return usageErr("invalid number %q", val)
		}
		set(o.param, n)
	case kFile:
		data, err := os.ReadFile(val)
		if err != nil {
			return err
		}
		set(o.param, string(data))
	case kBool:
		set(o.param, true)
	default:
		set(o.param, val)
	}
	return nil
}
