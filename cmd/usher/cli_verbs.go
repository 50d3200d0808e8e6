package main

import (
	"strings"

	"github.com/usher-mail/usher/internal/cli"
)

// kind is how an option or positional argument becomes a JSON parameter.
type kind int

const (
	kStr   kind = iota
	kBool       // a flag without argument: true
	kInt        // integer
	kArray      // positional: takes every remaining argument
	kFile       // option: a local file whose contents are sent (istream parameters)
)

type opt struct {
	short byte   // 0: long only
	long  string // "" : short only
	param string
	kind  kind
}

type posArg struct {
	param string
	kind  kind
}

// verb is one admin command: its words, the API command it runs and how its arguments map
// to parameters, as doveadm's CLI maps them.
type verb struct {
	words    []string
	cmd      string // camelCase API name
	usage    string // after "usher <words> "
	opts     []opt
	pos      []posArg
	required int // how many positional arguments must be given
	// headers gives the columns for the parameters given; nil: the response's keys.
	headers func(p map[string]any) []cli.Header
	// defaultFormat is the formatter the command picks when -f is not given.
	defaultFormat func(p map[string]any) cli.Format
	// template is the formatted layout when defaultFormat picks cli.Formatted.
	template func(p map[string]any) string
	// follow: the command starts a background job; its progress is printed
	// until it ends (cli_follow.go).
	follow bool
}

func (v *verb) name() string { return strings.Join(v.words, " ") }

func simple(titles ...string) []cli.Header {
	h := make([]cli.Header, len(titles))
	for i, t := range titles {
		h[i] = cli.Header{Key: t, Title: t}
	}
	return h
}

func fixed(h []cli.Header) func(map[string]any) []cli.Header {
	return func(map[string]any) []cli.Header { return h }
}

func always(f cli.Format) func(map[string]any) cli.Format {
	return func(map[string]any) cli.Format { return f }
}

var (
	optSocket  = opt{short: 'a', param: "socketPath", kind: kStr}
	optStatsSk = opt{short: 's', param: "socketPath", kind: kStr}
)

const dirA = "[-a <director socket path>]"

func has(p map[string]any, name string) bool { _, ok := p[name]; return ok }

// verbs lists every admin verb in doveadm's order.
func verbs() []*verb {
	return []*verb{
		{words: []string{"director", "status"}, cmd: "directorStatus", usage: dirA + " [<user>] [<tag>]",
			opts: []opt{optSocket}, pos: []posArg{{"user", kStr}, {"tag", kStr}},
			headers: func(p map[string]any) []cli.Header {
				if has(p, "user") {
					return simple("status", "expires", "hashed", "initial-config")
				}
				h := simple("mail server ip", "tag", "vhosts", "state", "state-changed", "users")
				h[4].Title = "state changed"
				return h
			},
			defaultFormat: func(p map[string]any) cli.Format {
				if has(p, "user") {
					return cli.Formatted
				}
				return cli.Table
			},
			template: func(map[string]any) string {
				return "Current: %{status} (expires %{expires})\nHashed: %{hashed}\nInitial config: %{initial-config}\n"
			}},
		{words: []string{"director", "map"}, cmd: "directorMap", usage: dirA + " [-f <users file>] [-h | -u] [<host>]",
			opts: []opt{optSocket, {'f', "", "usersFile", kFile}, {'h', "", "hashMap", kBool}, {'u', "", "userMap", kBool}},
			pos:  []posArg{{"host", kStr}},
			headers: func(p map[string]any) []cli.Header {
				switch {
				case has(p, "userMap"):
					return []cli.Header{{Key: "hash", Title: "hash", Flags: cli.HideTitle}}
				case has(p, "hashMap"):
					return []cli.Header{{Key: "user", Title: "user", Flags: cli.HideTitle}}
				}
				h := simple("user", "hash", "mail server ip", "expire time")
				h[0].Flags = cli.Expand
				return h
			}},
		{words: []string{"director", "add"}, cmd: "directorAdd", usage: dirA + " [-t <tag>] <host> [<vhost count>]",
			opts: []opt{optSocket, {'t', "", "tag", kStr}}, pos: []posArg{{"host", kStr}, {"vhostCount", kStr}}, required: 1},
		{words: []string{"director", "update"}, cmd: "directorUpdate", usage: dirA + " <host> <vhost count>",
			opts: []opt{optSocket}, pos: []posArg{{"host", kStr}, {"vhostCount", kStr}}, required: 2},
		{words: []string{"director", "up"}, cmd: "directorUp", usage: dirA + " <host>",
			opts: []opt{optSocket}, pos: []posArg{{"host", kStr}}, required: 1},
		{words: []string{"director", "down"}, cmd: "directorDown", usage: dirA + " <host>",
			opts: []opt{optSocket}, pos: []posArg{{"host", kStr}}, required: 1},
		{words: []string{"director", "remove"}, cmd: "directorRemove", usage: dirA + " <host>",
			opts: []opt{optSocket}, pos: []posArg{{"host", kStr}}, required: 1},
		{words: []string{"director", "move"}, cmd: "directorMove", usage: dirA + " <user> <host>",
			opts: []opt{optSocket}, pos: []posArg{{"user", kStr}, {"host", kStr}}, required: 2},
		{words: []string{"director", "kick"}, cmd: "directorKick", usage: dirA + " [-f <passdb field>] <user>",
			opts: []opt{optSocket, {'f', "", "passdbField", kStr}}, pos: []posArg{{"user", kStr}}, required: 1},
		{words: []string{"director", "flush"}, cmd: "directorFlush", usage: dirA + " [-F] [--max-parallel <n>] <host>|all",
			opts: []opt{optSocket, {'F', "", "forceFlush", kBool}, {0, "max-parallel", "maxParallel", kInt}},
			pos:  []posArg{{"host", kStr}}, required: 1},
		{words: []string{"director", "dump"}, cmd: "directorDump", usage: dirA,
			opts:          []opt{optSocket},
			headers:       fixed(simple("command", "socket-path", "host", "vhost_count")),
			defaultFormat: always(cli.Formatted),
			// doveadm's words, so that the dump can be replayed with doveadm (or with usher
			// after replacing the first word).
			template: func(p map[string]any) string {
				if has(p, "socketPath") {
					return "doveadm director %{command} -a %{socket-path} %{host} %{vhost_count}\n"
				}
				return "doveadm director %{command} %{host} %{vhost_count}\n"
			}},
		// usher's own verbs (no doveadm equivalent): health checks and moving users.
		{words: []string{"director", "health"}, cmd: "usherDirectorHealth", usage: dirA,
			opts: []opt{optSocket},
			headers: func(map[string]any) []cli.Header {
				h := simple("mail server ip", "state", "cause", "checks", "admin-hold", "users", "state-changed")
				h[4].Title, h[6].Title = "admin hold", "state changed"
				return h
			}},
		{words: []string{"director", "drain"}, cmd: "usherDirectorDrain", usage: dirA + " [--max-parallel <n>] <host>",
			opts: []opt{optSocket, {0, "max-parallel", "maxParallel", kInt}}, pos: []posArg{{"host", kStr}}, required: 1,
			follow: true},
		{words: []string{"director", "rebalance"}, cmd: "usherDirectorRebalance", usage: dirA + " [--max-parallel <n>]",
			opts: []opt{optSocket, {0, "max-parallel", "maxParallel", kInt}}, follow: true},
		{words: []string{"director", "jobs"}, cmd: "usherDirectorJobs", usage: dirA, opts: []opt{optSocket},
			headers: fixed(progressHeaders())},
		{words: []string{"director", "ring", "add"}, cmd: "directorRingAdd", usage: dirA + " <ip> [<port>]",
			opts: []opt{optSocket}, pos: []posArg{{"ip", kStr}, {"port", kStr}}, required: 1},
		{words: []string{"director", "ring", "remove"}, cmd: "directorRingRemove", usage: dirA + " <ip> [<port>]",
			opts: []opt{optSocket}, pos: []posArg{{"ip", kStr}, {"port", kStr}}, required: 1},
		{words: []string{"director", "ring", "status"}, cmd: "directorRingStatus", usage: dirA,
			opts: []opt{optSocket},
			headers: fixed(simple("director ip", "port", "type", "last failed", "status", "ping ms",
				"input", "output", "buffered", "buffered peak", "last read", "last write"))},
		{words: []string{"who"}, cmd: "who", usage: "[-a <anvil socket path>] [-1] [<user mask>] [<ip/bits>]",
			opts: []opt{optSocket, {'1', "", "separateConnections", kBool}}, pos: []posArg{{"mask", kArray}},
			headers: func(p map[string]any) []cli.Header {
				if has(p, "separateConnections") {
					h := simple("username", "service", "pid", "ip")
					h[0].Flags, h[1].Title = cli.Expand, "proto"
					return h
				}
				h := simple("username", "connections", "service", "pids", "ips")
				h[1].Title, h[2].Title, h[3].Title, h[4].Title = "#", "proto", "(pids)", "(ips)"
				return h
			}},
		{words: []string{"kick"}, cmd: "kick", usage: "[-a <anvil socket path>] [-f] <user mask>[|]<ip/bits>",
			opts: []opt{optSocket, {'f', "", "force", kBool}}, pos: []posArg{{"mask", kArray}},
			headers: fixed(simple("result")), defaultFormat: always(cli.Formatted),
			template: func(map[string]any) string { return "%{result} " }},
		{words: []string{"penalty"}, cmd: "penalty", usage: "[-a <anvil socket path>] [<ip/bits>]",
			opts: []opt{optSocket}, pos: []posArg{{"netmask", kStr}},
			headers: fixed(simple("IP", "penalty", "last_penalty", "last_update"))},
		{words: []string{"stats", "dump"}, cmd: "statsDump", usage: "[-s <stats socket path>] [-r] [-f <fields>]",
			opts:    []opt{optStatsSk, {'r', "", "reset", kBool}, {'f', "", "fields", kStr}},
			headers: statsHeaders, defaultFormat: always(cli.Tab)},
		{words: []string{"stats", "reset"}, cmd: "statsReset", usage: "[-s <stats socket path>]",
			opts: []opt{optStatsSk}},
		{words: []string{"oldstats", "dump"}, cmd: "oldstatsDump", usage: "[-s <stats socket path>] <type> [<filter>]",
			opts: []opt{optStatsSk}, pos: []posArg{{"type", kStr}, {"filter", kStr}}, required: 1,
			defaultFormat: always(cli.Tab)},
		{words: []string{"oldstats", "reset"}, cmd: "oldstatsReset", usage: "[-s <stats socket path>]",
			opts: []opt{optStatsSk}},
		{words: []string{"reload"}, cmd: "reload"},
		{words: []string{"stop"}, cmd: "stop"},
		{words: []string{"service", "stop"}, cmd: "serviceStop", usage: "<service> [<service> [...]]",
			pos: []posArg{{"service", kArray}}, required: 1},
		{words: []string{"proxy", "list"}, cmd: "proxyList", usage: "[-a <ipc socket path>]",
			opts: []opt{optSocket},
			headers: func(map[string]any) []cli.Header {
				h := simple("username", "service", "src-ip", "dest-ip", "dest-port")
				h[0].Flags = cli.Expand
				h[1].Title, h[2].Title, h[3].Title, h[4].Title = "proto", "src ip", "dest ip", "port"
				return h
			}},
		{words: []string{"proxy", "kick"}, cmd: "proxyKick", usage: "[-a <ipc socket path>] [-f <passdb field>] <user> [<user> [...]]",
			opts: []opt{optSocket, {'f', "", "passdbField", kStr}}, pos: []posArg{{"user", kArray}}, required: 1,
			headers: fixed(simple("count")), defaultFormat: always(cli.Formatted),
			template: func(map[string]any) string { return "%{count} connections kicked\n" }},
	}
}

// statsHeaders are stats dump's columns: metric and field, then the requested fields as
// numbers (default as in 2.3).
func statsHeaders(p map[string]any) []cli.Header {
	fields, _ := p["fields"].(string)
	if fields == "" {
		fields = "count sum min max avg median stddev %95"
	}
	h := simple("metric_name", "field")
	for _, f := range strings.FieldsFunc(fields, func(r rune) bool { return r == ' ' || r == ',' }) {
		h = append(h, cli.Header{Key: f, Title: f, Flags: cli.Number})
	}
	return h
}
