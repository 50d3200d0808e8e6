package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Limits that keep a broken or hostile file (or a fuzzer) from exhausting
// memory or recursing forever. Real configurations are nowhere near them.
const (
	MaxLineLength      = 64 * 1024 // one physical line, and one line joined from '\' continuations
	maxValueLength     = 1 << 20   // one value after <file and $var expansion
	maxTotalValueBytes = 16 << 20  // all values of one parse together
	maxIncludeDepth    = 16
	maxFiles           = 256
)

// Node is one element of the raw configuration tree: either a setting
// (Key = Value) or a section (Key [Label] { Children }). The root is a
// section with an empty Key. File and Line say where the element was written,
// so later checks can point at it.
type Node struct {
	Key      string
	Value    string
	Section  bool
	Label    string
	Children []*Node
	File     string
	Line     int
}

// Setting returns the last setting named key among n's direct children: as in
// Dovecot, a later line overrides an earlier one.
func (n *Node) Setting(key string) (*Node, bool) {
	for i := len(n.Children) - 1; i >= 0; i-- {
		c := n.Children[i]
		if !c.Section && c.Key == key {
			return c, true
		}
	}
	return nil, false
}

// parser holds the state of one parse: the include chain for loop detection
// and the budgets that bound its work.
type parser struct {
	readFile   func(string) ([]byte, error)
	glob       func(string) ([]string, error) // nil: include paths are taken literally
	includes   []string                       // files being parsed, outermost first
	files      int
	valueBytes int
	warnings   []Warning
}

// ParseTree parses Dovecot 2.3 configuration syntax into a tree without
// interpreting any setting. readFile serves !include and <file; when it is nil
// every such file is missing. Glob patterns in !include are not expanded here
// (there is no directory to list); Load expands them.
func ParseTree(name string, data []byte, readFile func(string) ([]byte, error)) (*Node, []Warning, error) {
	p := &parser{readFile: readFile}
	return p.parse(name, data)
}

func (p *parser) parse(name string, data []byte) (*Node, []Warning, error) {
	if p.readFile == nil {
		p.readFile = func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	}
	root := &Node{Section: true, File: name, Line: 0}
	p.files = 1
	if err := p.parseFile(name, data, []*Node{root}); err != nil {
		return nil, p.warnings, err
	}
	return root, p.warnings, nil
}

// parseFile adds the contents of one file to the innermost section of outer.
// Sections must close in the file that opened them.
func (p *parser) parseFile(name string, data []byte, outer []*Node) error {
	p.includes = append(p.includes, filepath.Clean(name))
	defer func() { p.includes = p.includes[:len(p.includes)-1] }()

	stack := append([]*Node(nil), outer...)
	base := len(stack)
	var joined strings.Builder
	continuing, joinedLine := false, 0
	text := string(data)
	for lineNo := 1; len(text) > 0; lineNo++ {
		var raw string
		raw, text, _ = strings.Cut(text, "\n")
		if len(raw) > MaxLineLength {
			return errAt(name, lineNo, "line longer than %d bytes", MaxLineLength)
		}
		line := p.stripComment(name, lineNo, strings.TrimSuffix(raw, "\r"))
		if line == "" {
			continue // blank and comment lines do not end a continuation, as in Dovecot
		}
		if strings.HasSuffix(line, `\`) {
			if !continuing {
				continuing, joinedLine = true, lineNo
			}
			if part := strings.TrimRight(line[:len(line)-1], " \t"); part != "" {
				joined.WriteString(part)
				joined.WriteByte(' ')
			}
			if joined.Len() > MaxLineLength {
				return errAt(name, joinedLine, "continued line longer than %d bytes", MaxLineLength)
			}
			continue
		}
		at := lineNo
		if continuing {
			joined.WriteString(line)
			line, at = joined.String(), joinedLine
			joined.Reset()
			continuing = false
		}
		if err := p.parseLine(name, at, line, &stack, base); err != nil {
			return err
		}
	}
	if continuing {
		return errAt(name, joinedLine, `line continued with '\' at end of file`)
	}
	if len(stack) > base {
		open := stack[len(stack)-1]
		return errAt(name, open.Line, "Missing '}': section %s is not closed", sectionName(open))
	}
	return nil
}

// stripComment trims a physical line and cuts off its comment. A '#' inside
// single or double quotes is text.
func (p *parser) stripComment(file string, lineNo int, s string) string {
	s = strings.TrimLeft(s, " \t")
	if s == "" || s[0] == '#' {
		return ""
	}
scan:
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'':
			for i++; i < len(s) && s[i] != c; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
			}
		case '#':
			if s[i-1] != ' ' && s[i-1] != '\t' {
				p.warnings = append(p.warnings, Warning{File: file, Line: lineNo,
					Msg: "ambiguous '#' character treated as a comment; add a space before it"})
			}
			s = s[:i]
			break scan
		}
	}
	return strings.TrimRight(s, " \t")
}

func (p *parser) parseLine(file string, lineNo int, line string, stack *[]*Node, base int) error {
	cur := (*stack)[len(*stack)-1]
	if line[0] == '!' {
		return p.directive(file, lineNo, line, *stack)
	}
	end := strings.IndexAny(line, " \t={")
	if end < 0 {
		end = len(line)
	}
	key, rest := line[:end], strings.TrimLeft(line[end:], " \t")
	if strings.HasPrefix(key, "}") {
		if key != "}" || rest != "" {
			return errAt(file, lineNo, "Garbage after '}'")
		}
		if len(*stack) == base {
			return errAt(file, lineNo, "Unexpected '}'")
		}
		*stack = (*stack)[:len(*stack)-1]
		return nil
	}
	if key == "" {
		return errAt(file, lineNo, "missing setting or section name")
	}
	if v, ok := strings.CutPrefix(rest, "="); ok {
		value, err := p.value(file, lineNo, key, strings.TrimLeft(v, " \t"), *stack)
		if err != nil {
			return err
		}
		cur.Children = append(cur.Children, &Node{Key: key, Value: value, File: file, Line: lineNo})
		return nil
	}
	label, ok := strings.CutSuffix(rest, "{")
	if !ok {
		if strings.Contains(rest, "{") {
			return errAt(file, lineNo, "Garbage after '{'")
		}
		return errAt(file, lineNo, "Expecting '=' or '{' after %s", key)
	}
	label = strings.TrimRight(label, " \t")
	if strings.ContainsAny(label, "{}") {
		return errAt(file, lineNo, "Garbage after '{'")
	}
	node := &Node{Key: key, Label: unquote(label), Section: true, File: file, Line: lineNo}
	cur.Children = append(cur.Children, node)
	*stack = append(*stack, node)
	return nil
}

// value turns the raw right-hand side into the setting's value: <file
// contents, an unquoted string, or $variables expanded.
func (p *parser) value(file string, lineNo int, key, v string, stack []*Node) (string, error) {
	switch {
	case v == "":
		return "", nil
	case v[0] == '<':
		path := unquote(strings.TrimLeft(v[1:], " \t"))
		if path == "" {
			return "", errAt(file, lineNo, "%s: missing file name after '<'", key)
		}
		data, err := p.readFile(resolve(file, path))
		if err != nil {
			return "", errAt(file, lineNo, "%s: Can't open file %s: %v", key, path, pathErr(err))
		}
		return p.account(file, lineNo, string(data))
	case (v[0] == '"' || v[0] == '\'') && len(v) >= 2 && v[len(v)-1] == v[0]:
		return p.account(file, lineNo, unescape(v[1:len(v)-1]))
	case v[0] != '"' && v[0] != '\'' && strings.Contains(v, "$"):
		// Like Dovecot, a value that starts with a quote is never expanded.
		return p.expand(file, lineNo, v, stack)
	}
	return p.account(file, lineNo, v)
}

// expand replaces every space-separated token that starts with '$' by the
// variable's value. Like Dovecot it rebuilds the value with single spaces.
func (p *parser) expand(file string, lineNo int, v string, stack []*Node) (string, error) {
	var b strings.Builder
	for {
		tok, rest, more := strings.Cut(v, " ")
		if name, ok := strings.CutPrefix(tok, "$"); ok {
			val, err := lookupVariable(name, stack)
			if err != nil {
				return "", errAt(file, lineNo, "%v", err)
			}
			b.WriteString(val)
		} else {
			b.WriteString(tok)
		}
		if b.Len() > maxValueLength {
			return "", errAt(file, lineNo, "value longer than %d bytes", maxValueLength)
		}
		if !more {
			break
		}
		b.WriteByte(' ')
		v = strings.TrimLeft(rest, " \t")
	}
	return p.account(file, lineNo, b.String())
}

// lookupVariable finds the value of $name: $ENV:X from the environment, else
// the latest setting of that name in the current section or one enclosing
// it, else the setting's default.
func lookupVariable(name string, stack []*Node) (string, error) {
	if env, ok := strings.CutPrefix(name, "ENV:"); ok {
		return os.Getenv(env), nil
	}
	for i := len(stack) - 1; i >= 0; i-- {
		if n, ok := stack[i].Setting(name); ok {
			return n.Value, nil
		}
	}
	if def, ok := variableDefault(name); ok {
		return def, nil
	}
	return "", errors.New("Unknown variable: $" + name)
}

// account charges a value against the parse's budgets.
func (p *parser) account(file string, lineNo int, v string) (string, error) {
	if len(v) > maxValueLength {
		return "", errAt(file, lineNo, "value longer than %d bytes", maxValueLength)
	}
	p.valueBytes += len(v)
	if p.valueBytes > maxTotalValueBytes {
		return "", errAt(file, lineNo, "configuration values exceed %d bytes in total", maxTotalValueBytes)
	}
	return v, nil
}

func sectionName(n *Node) string {
	if n.Label == "" {
		return n.Key
	}
	return n.Key + " " + n.Label
}

// resolve makes path relative to the directory of the file that names it.
func resolve(file, path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(filepath.Dir(file), path)
}

// unquote strips matching quotes and backslash escapes, as Dovecot does for
// quoted values; anything else is returned unchanged.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return unescape(s[1 : len(s)-1])
	}
	return s
}

// unescape drops each backslash and keeps the character after it literally.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pathErr drops the path that *fs.PathError repeats, since messages already
// name the file.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
