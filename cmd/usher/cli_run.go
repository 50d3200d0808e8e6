package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/usher-mail/usher/internal/cli"
)

// runVerb executes the command and prints its output and, on failure, doveadm's message.
func runVerb(ctx context.Context, c *cli.Client, g globals, v *verb, p map[string]any, order []string,
	stdout, stderr io.Writer) int {
	params := make([]cli.Param, 0, len(order))
	for _, name := range order {
		params = append(params, cli.Param{Name: name, Value: p[name]})
	}
	res, err := c.Run(ctx, v.cmd, params)
	if err != nil {
		var he *cli.HTTPError
		if errors.As(err, &he) {
			fmt.Fprintf(stderr, "Error: %s: %v\n", c.URL, he)
			switch he.Status {
			case 401, 403:
				fmt.Fprintln(stderr, "(check --password / --api-key or doveadm_password / doveadm_api_key)")
				return exNoPerm
			case 400:
				return exUsage
			}
			return exTempFail
		}
		fmt.Fprintf(stderr, "Error: %s: %v\n", c.URL, err)
		return exTempFail
	}
	switch res.Error {
	case "":
	case "exitCode":
		return failed(v, p, res.ExitCode, stdout, stderr)
	case "unknownMethod":
		fmt.Fprintf(stderr, "Error: %s does not know the command %s\n", c.URL, v.cmd)
		return exUsage
	case "invalidRequest":
		fmt.Fprintf(stderr, "Error: %s rejected the parameters of %s\n", c.URL, v.cmd)
		return exUsage
	case "unAuthorized":
		fmt.Fprintf(stderr, "Error: %s is not in doveadm_allowed_commands\n", v.name())
		return exNoPerm
	default:
		fmt.Fprintf(stderr, "Error: %s failed: %s\n", v.name(), res.Error)
		return exTempFail
	}

	if v.follow {
		return follow(ctx, c, g, v, p, res, stdout, stderr)
	}
	format, template := g.format, ""
	if format == "" {
		format = cli.Table
		if v.defaultFormat != nil {
			format = v.defaultFormat(p)
		}
		if format == cli.Formatted {
			template = v.template(p)
		}
	}
	var hdrs []cli.Header
	if v.headers != nil {
		hdrs = v.headers(p)
	}
	out := cli.Build(hdrs, res.Rows)
	kickText := v.cmd == "kick" && format == cli.Formatted
	if kickText {
		fmt.Fprint(stdout, "kicked connections from the following users:\n")
	}
	if err := cli.Write(stdout, out, format, termColumns(stdout), template); err != nil {
		fmt.Fprintf(stderr, "Error: write: %v\n", err)
		return exTempFail
	}
	if kickText {
		fmt.Fprint(stdout, "\n")
	}
	return 0
}

// failed prints what doveadm prints for a command that set exit code code, and returns it.
// The API carries only the code, so the messages are doveadm's for that code.
func failed(v *verb, p map[string]any, code int, stdout, stderr io.Writer) int {
	str := func(name string) string { s, _ := p[name].(string); return s }
	name := v.name()
	switch {
	case code == exUsage:
		fmt.Fprintf(stderr, "usage: usher %s %s\n", name, v.usage)
	case code == 68 && (name == "director up" || name == "director down" || name == "director remove" || name == "director drain"):
		fmt.Fprintf(stderr, "Error: %s: doesn't exist\n", str("host"))
	case code == 68 && name == "director flush":
		fmt.Fprintf(stderr, "Warning: %s: doesn't exist\n", str("host"))
	case code == 68 && name == "director move":
		fmt.Fprintf(stderr, "Error: Host '%s' doesn't exist\n", str("host"))
	case code == 68 && strings.HasPrefix(name, "director ring"):
		fmt.Fprintln(stderr, "Error: Not found")
	case code == 68 && name == "kick":
		fmt.Fprintln(stdout, "no users kicked")
	case code == 68 && name == "service stop":
		fmt.Fprintf(stderr, "Error: Unknown service among: %s\n", strings.Join(p["service"].([]string), " "))
	case code == 76 && strings.HasPrefix(name, "director"):
		fmt.Fprintln(stderr, "Error: Invalid reply from director")
	case code == exConfig && name == "reload":
		fmt.Fprintln(stderr, "Error: reload failed: the configuration has errors, the old one stays in force (see usher's log)")
	default:
		fmt.Fprintf(stderr, "Error: %s failed: %s (exit code %d)\n", name, exitMeaning(code), code)
	}
	return code
}

func exitMeaning(code int) string {
	switch code {
	case 65:
		return "data error"
	case 67:
		return "user doesn't exist"
	case 68:
		return "not found"
	case exTempFail:
		return "temporary failure (director busy, host not resolvable or service unreachable)"
	case 76:
		return "protocol error"
	case exNoPerm:
		return "permission denied"
	case exConfig:
		return "configuration error"
	}
	return "failed"
}
