package doveadm

import (
	"strings"

	"github.com/usher-mail/usher/internal/jsonesc"
)

// paramType is the declared type of a command parameter; it decides how a JSON value is
// accepted (reference 1.6) and what the catalogue prints.
type paramType int

const (
	typeStr paramType = iota
	typeBool
	typeInt
	typeArray
)

func (t paramType) String() string {
	switch t {
	case typeBool:
		return "boolean"
	case typeInt:
		return "integer"
	case typeArray:
		return "array"
	}
	return "string"
}

type paramSpec struct {
	name string // registered dash form, e.g. "socket-path"
	typ  paramType
}

type cmdSpec struct {
	name   string // registered space form, e.g. "director status"
	params []paramSpec
}

// command is a registered command bound to its implementation.
type command struct {
	cmdSpec
	// hidden commands and params run over HTTP but are not in GET /doveadm/v1, which must stay
	// byte-identical to 2.3.19's catalogue.
	hidden       bool
	hiddenParams []paramSpec
	run          handler
}

// allParams is the parameter list used for name matching: visible ones, then hidden ones.
func (c *command) allParams() []paramSpec {
	if len(c.hiddenParams) == 0 {
		return c.params
	}
	out := make([]paramSpec, 0, len(c.params)+len(c.hiddenParams))
	return append(append(out, c.params...), c.hiddenParams...)
}

// ccdMatch reports whether given matches the registered name the way doveadm compares command
// and parameter names: case-sensitive, except that a space or '-' in the registered name also
// matches the upper-cased next letter ("director status" = "director-status" = "directorStatus").
func ccdMatch(registered, given string) bool {
	i, j := 0, 0
	for i < len(registered) && j < len(given) {
		r, g := registered[i], given[j]
		if r == g {
			i++
			j++
			continue
		}
		if (r == ' ' || r == '-') && (g == ' ' || g == '-') {
			i++
			j++
			continue
		}
		if (r == ' ' || r == '-') && i+1 < len(registered) {
			next := registered[i+1]
			if next >= 'a' && next <= 'z' && g == next-'a'+'A' {
				i += 2
				j++
				continue
			}
		}
		return false
	}
	return i == len(registered) && j == len(given)
}

// camelCase renders a registered name the way the catalogue shows it.
func camelCase(s string) string {
	var b strings.Builder
	up := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '-' {
			up = true
			continue
		}
		if up && c >= 'a' && c <= 'z' {
			c = c - 'a' + 'A'
		}
		up = false
		b.WriteByte(c)
	}
	return b.String()
}

// registry is the ordered command table.
type registry struct {
	cmds []*command
}

func (r *registry) lookup(name string) *command {
	for _, c := range r.cmds {
		if ccdMatch(c.name, name) {
			return c
		}
	}
	return nil
}

// catalogueBody renders GET /doveadm/v1 in 2.3.19's exact byte layout.
func (r *registry) catalogueBody() []byte {
	var b strings.Builder
	b.WriteString("[\n")
	first := true
	for _, c := range r.cmds {
		if c.hidden {
			continue
		}
		if !first {
			b.WriteString(",\n")
		}
		first = false
		b.WriteString("\t{\"command\":\"")
		b.WriteString(camelCase(jsonesc.Escape(c.name)))
		b.WriteString("\", \"parameters\":[")
		for i, p := range c.params {
			if i == 0 {
				b.WriteString("\n")
			} else {
				b.WriteString(",\n")
			}
			b.WriteString("\t\t{\"name\":\"")
			b.WriteString(camelCase(jsonesc.Escape(p.name)))
			b.WriteString("\",\"type\":\"")
			b.WriteString(p.typ.String())
			b.WriteString("\"}")
		}
		if len(c.params)+len(c.hiddenParams) > 0 {
			b.WriteString("\n\t")
		}
		b.WriteString("]}")
	}
	b.WriteString("\n]")
	return []byte(b.String())
}

// newRegistry binds the catalogue to implementations. Commands usher does not implement
// (mail, fs, dict, replicator, sieve, ...) stay listed and answer exit code 75: on a 2.3
// director their backing service (mail storage, replicator, dict server, ...) is not
// running, doveadm-server cannot connect to it and dies, which spec 0 turns into the
// in-band EX_TEMPFAIL for an unreachable internal service.
func newRegistry() *registry {
	impl := map[string]handler{
		"service stop":         cmdServiceStop,
		"service status":       cmdServiceStatus,
		"process status":       cmdProcessStatus,
		"instance list":        cmdInstanceList,
		"stop":                 cmdStop,
		"reload":               cmdReload,
		"stats dump":           cmdStatsDump,
		"oldstats dump":        cmdOldStatsDump,
		"oldstats reset":       cmdOldStatsReset,
		"penalty":              cmdPenalty,
		"kick":                 cmdKick,
		"who":                  cmdWho,
		"director status":      cmdDirectorStatus,
		"director map":         cmdDirectorMap,
		"director add":         cmdDirectorAdd,
		"director update":      cmdDirectorUpdate,
		"director up":          cmdDirectorUp,
		"director down":        cmdDirectorDown,
		"director remove":      cmdDirectorRemove,
		"director move":        cmdDirectorMove,
		"director kick":        cmdDirectorKick,
		"director flush":       cmdDirectorFlush,
		"director dump":        cmdDirectorDump,
		"director ring add":    cmdDirectorRingAdd,
		"director ring remove": cmdDirectorRingRemove,
		"director ring status": cmdDirectorRingStatus,
		"proxy list":           cmdProxyList,
		"proxy kick":           cmdProxyKick,
	}
	r := &registry{}
	for _, spec := range catalogue {
		c := &command{cmdSpec: spec, run: impl[spec.name]}
		if c.run == nil {
			c.run = cmdUnavailable
		}
		if spec.name == "stats dump" {
			// spec 0: statsDump with `type` answers the seed-era old-stats form.
			c.hiddenParams = []paramSpec{{"type", typeStr}, {"filter", typeStr}}
		}
		r.cmds = append(r.cmds, c)
		if spec.name == "stats remove" {
			// spec 0: the seed-era `stats reset` exists too; not in the 2.3 catalogue.
			r.cmds = append(r.cmds, &command{
				cmdSpec: cmdSpec{name: "stats reset", params: []paramSpec{{"socket-path", typeStr}}},
				hidden:  true, run: cmdOldStatsReset,
			})
		}
	}
	r.cmds = append(r.cmds, usherCommands()...)
	return r
}
