package doveadm

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/usher-mail/usher/internal/jsonesc"
)

// Exit codes (sysexits.h values doveadm uses, reference 2).
const (
	exOK       = 0
	exUsage    = 64
	exNotFound = 68 // EX_NOHOST, doveadm's "doesn't exist"
	exTempFail = 75
	exProtocol = 76
	exConfig   = 78
)

// param is one parsed parameter value, already converted to its declared type.
type param struct {
	str string
	b   bool
	i   int64
	arr []string
}

// cmdCtx is what a command implementation sees.
type cmdCtx struct {
	ctx    context.Context
	srv    *Server
	svc    Services
	cfg    *Config
	log    *slog.Logger
	params map[string]param // keyed by registered (dash) name; present = set
	after  *[]func()        // run once the response has been written (stop)
}

func (c *cmdCtx) has(name string) bool { _, ok := c.params[name]; return ok }
func (c *cmdCtx) str(name string) (string, bool) {
	p, ok := c.params[name]
	return p.str, ok
}
func (c *cmdCtx) boolean(name string) bool  { return c.params[name].b }
func (c *cmdCtx) integer(name string) int64 { return c.params[name].i }
func (c *cmdCtx) array(name string) ([]string, bool) {
	p, ok := c.params[name]
	return p.arr, ok
}

// handler runs a command; a non-zero exit code discards the table (reference 1.7).
type handler func(c *cmdCtx) (*table, int)

// badRequest is a grammar violation: the whole response becomes 400 with this text.
type badRequest struct{ text string }

func (e *badRequest) Error() string { return e.text }

func bad(format string, a ...any) error { return &badRequest{fmt.Sprintf(format, a...)} }

// Grammar violations, worded as 2.3 words them (the array one is sic).
const (
	msgNotArray    = "Request must be a JSON array"
	msgCmdNotArray = "Command must be a JSON array"
	msgNameNotStr  = "Command name must be a string"
	msgParamsObj   = "Parameters must be contained in a JSON object"
	msgIDNotStr    = "Command ID must be a string"
	msgCmdEnd      = "Unexpected JSON element at end of command"
	msgArrayElems  = "Command parameter array can only containstring values"
)

// reqParser walks one POST body and runs each command as soon as its closing ']' is read,
// so commands before a later grammar error keep their effects (reference 1.5).
type reqParser struct {
	lx    *lexer
	srv   *Server
	ctx   context.Context
	cfg   *Config
	out   strings.Builder
	n     int // elements written
	exit  int // doveadm's global exit code, stale across pre-flight errors
	after []func()
}

func (p *reqParser) next() (token, error) {
	t, err := p.lx.next()
	if err != nil {
		if le, ok := err.(*lexError); ok {
			return t, &badRequest{"JSON parse error: " + le.msg}
		}
		return t, err
	}
	return t, nil
}

// run parses and executes the whole body. On a grammar error it returns it; the output
// collected so far is then discarded by the caller.
func (p *reqParser) run() error {
	t, err := p.next()
	if err != nil {
		return err
	}
	if t.kind != tokArrStart {
		return bad(msgNotArray)
	}
	p.out.WriteByte('[')
	for {
		t, err := p.next()
		if err != nil {
			return err
		}
		if t.kind == tokArrEnd {
			break
		}
		if t.kind != tokArrStart {
			return bad(msgCmdNotArray)
		}
		if err := p.command(); err != nil {
			return err
		}
	}
	if t, err := p.next(); err != nil {
		return err
	} else if t.kind != tokEOF {
		return &badRequest{"JSON parse error: " + errTrailing}
	}
	p.out.WriteByte(']')
	return nil
}

// skip consumes one complete value whose first token is t.
func (p *reqParser) skip(t token) error {
	depth := 0
	for {
		switch t.kind {
		case tokArrStart, tokObjStart:
			depth++
		case tokArrEnd, tokObjEnd:
			depth--
		}
		if depth <= 0 {
			return nil
		}
		var err error
		if t, err = p.next(); err != nil {
			return err
		}
	}
}

func (p *reqParser) command() error {
	t, err := p.next()
	if err != nil {
		return err
	}
	if t.kind != tokString {
		return bad(msgNameNotStr)
	}
	cmd := p.srv.reg.lookup(t.text)
	params := map[string]param{}
	invalid, usage := false, false
	if t, err = p.next(); err != nil {
		return err
	}
	if cmd == nil {
		if t.kind == tokArrEnd || t.kind == tokObjEnd {
			return bad(msgParamsObj)
		}
		if err := p.skip(t); err != nil {
			return err
		}
	} else {
		if t.kind != tokObjStart {
			return bad(msgParamsObj)
		}
		if invalid, usage, err = p.params(cmd, params); err != nil {
			return err
		}
	}
	if t, err = p.next(); err != nil {
		return err
	}
	if t.kind != tokString {
		return bad(msgIDNotStr)
	}
	tag := t.text
	if t, err = p.next(); err != nil {
		return err
	}
	if t.kind != tokArrEnd {
		return bad(msgCmdEnd)
	}
	p.execute(cmd, params, invalid, usage, tag)
	return nil
}

// params reads the parameter object of a known command into vals.
func (p *reqParser) params(cmd *command, vals map[string]param) (invalid, usage bool, err error) {
	specs := cmd.allParams()
	seen := map[string]bool{}
	for {
		t, err := p.next()
		if err != nil {
			return invalid, usage, err
		}
		if t.kind == tokObjEnd {
			return invalid, usage, nil
		}
		key := t.text
		if t, err = p.next(); err != nil {
			return invalid, usage, err
		}
		if invalid {
			// After an unknown key 2.3 skips every remaining value of the object.
			if err := p.skip(t); err != nil {
				return invalid, usage, err
			}
			continue
		}
		var spec *paramSpec
		for i := range specs {
			if ccdMatch(specs[i].name, key) {
				spec = &specs[i]
				break
			}
		}
		if spec == nil {
			invalid = true
			if err := p.skip(t); err != nil {
				return invalid, usage, err
			}
			continue
		}
		if seen[spec.name] {
			return invalid, usage, bad("Parameter `%s' is duplicated", spec.name)
		}
		seen[spec.name] = true
		if t.kind == tokNull {
			// 2.3 treats null as a parameter that was not given, whatever its type.
			continue
		}
		v, verdict, err := p.value(spec, t)
		if err != nil {
			return invalid, usage, err
		}
		switch verdict {
		case valueInvalid:
			invalid = true
		case valueUsage:
			usage = true
		}
		vals[spec.name] = v
	}
}

const (
	valueOK = iota
	valueInvalid
	valueUsage
)

// value converts the value starting at token t (never null: the caller drops those) by the
// parameter's declared type (reference 1.6). Where 2.3 would crash (nested JSON for a scalar)
// the verdict is valueUsage: spec 0 answers those with the in-band exit code 64.
func (p *reqParser) value(spec *paramSpec, t token) (param, int, error) {
	if spec.typ == typeArray {
		switch t.kind {
		case tokString:
			return param{arr: []string{t.text}}, valueOK, nil
		case tokArrStart:
			arr := []string{}
			for {
				e, err := p.next()
				if err != nil {
					return param{}, 0, err
				}
				if e.kind == tokArrEnd {
					return param{arr: arr}, valueOK, nil
				}
				if e.kind != tokString {
					return param{}, 0, bad(msgArrayElems)
				}
				arr = append(arr, e.text)
			}
		}
		return param{}, 0, bad("Parameter `%s' must be string or array", spec.name)
	}
	switch t.kind {
	case tokArrStart, tokObjStart:
		return param{}, valueUsage, p.skip(t)
	}
	text := t.text
	switch spec.typ {
	case typeBool:
		return param{b: text == "true", str: text}, valueOK, nil
	case typeInt:
		n, ok := parseInt64(text)
		if !ok || (t.kind != tokNumber && t.kind != tokString) {
			return param{}, valueInvalid, nil
		}
		return param{i: n, str: text}, valueOK, nil
	}
	return param{str: text}, valueOK, nil
}

// parseInt64 accepts what str_to_int64 accepts: an optional '-' and decimal digits.
func parseInt64(s string) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	d := strings.TrimPrefix(s, "-")
	if d == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if (!neg && n > 1<<63-1) || (neg && n > 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

func (p *reqParser) element(s string) {
	if p.n > 0 {
		p.out.WriteByte(',')
	}
	p.n++
	p.out.WriteString(s)
}

func errorElement(typ string, code int, tag string) string {
	return fmt.Sprintf(`["error",{"type":"%s", "exitCode":%d},"%s"]`, typ, code, jsonesc.Escape(tag))
}

func (p *reqParser) allowed(cmd *command) bool {
	if len(p.cfg.AllowedCommands) == 0 {
		return true
	}
	for _, a := range p.cfg.AllowedCommands {
		if a == cmd.name {
			return true
		}
	}
	return false
}

func (p *reqParser) execute(cmd *command, params map[string]param, invalid, usage bool, tag string) {
	log := p.cfg.logger()
	switch {
	case cmd == nil:
		p.element(errorElement("unknownMethod", p.exit, tag))
		return
	case invalid:
		p.element(errorElement("invalidRequest", p.exit, tag))
		return
	case !p.allowed(cmd):
		p.element(errorElement("unAuthorized", p.exit, tag))
		return
	case usage:
		p.exit = exUsage
		p.element(errorElement("exitCode", p.exit, tag))
		return
	}
	if u, ok := params["user"]; ok && u.str != "" {
		log.Info("Executing command", "command", cmd.name, "user", u.str)
	} else {
		log.Info("Executing command", "command", cmd.name)
	}
	c := &cmdCtx{ctx: p.ctx, srv: p.srv, svc: p.srv.svc, cfg: p.cfg, log: log, params: params, after: &p.after}
	tbl, code := cmd.run(c)
	p.exit = code
	if code != 0 {
		p.element(errorElement("exitCode", code, tag))
		return
	}
	var b strings.Builder
	b.WriteString(`["doveadmResponse",`)
	tbl.appendJSON(&b)
	b.WriteString(`,"`)
	b.WriteString(jsonesc.Escape(tag))
	b.WriteString(`"]`)
	p.element(b.String())
}

// execBody runs a POST body. status is 200 with a JSON body, or 400 with the error text
// (without the trailing CRLF the HTTP layer adds).
func (s *Server) execBody(ctx context.Context, cfg *Config, body []byte) (int, []byte, []func()) {
	p := &reqParser{lx: newLexer(body), srv: s, ctx: ctx, cfg: cfg}
	if err := p.run(); err != nil {
		if br, ok := err.(*badRequest); ok {
			return 400, []byte(br.text), p.after
		}
		return 500, []byte("Internal Server Error"), p.after
	}
	return 200, []byte(p.out.String()), p.after
}

// Exec runs a doveadm request body without HTTP and authentication, for the CLI. status is
// 200 with the JSON response body, or 400 with the error text.
func (s *Server) Exec(ctx context.Context, body []byte) (status int, out []byte) {
	status, out, after := s.execBody(ctx, s.config(), body)
	for _, f := range after {
		f()
	}
	return status, out
}
