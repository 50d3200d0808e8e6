package config

import (
	"errors"
	"io/fs"
	"strings"
)

// directive handles "!include path" and "!include_try path". The path is
// relative to the including file and may be a glob; !include_try tolerates
// a pattern that matches nothing and files that do not exist.
func (p *parser) directive(file string, lineNo int, line string, stack []*Node) error {
	end := strings.IndexAny(line, " \t")
	if end < 0 {
		end = len(line)
	}
	word, arg := line[:end], unquote(strings.TrimSpace(line[end:]))
	var try bool
	switch word {
	case "!include":
	case "!include_try":
		try = true
	default:
		return errAt(file, lineNo, "Unknown directive %s", word)
	}
	if arg == "" {
		return errAt(file, lineNo, "%s: missing file name", word)
	}
	pattern := resolve(file, arg)
	paths := []string{pattern}
	if p.glob != nil && strings.ContainsAny(pattern, "*?[") {
		var err error
		if paths, err = p.glob(pattern); err != nil {
			return errAt(file, lineNo, "%s %s: %v", word, arg, err)
		}
	}
	found := 0
	for _, path := range paths {
		if len(p.includes) >= maxIncludeDepth {
			return errAt(file, lineNo, "includes nested more than %d deep", maxIncludeDepth)
		}
		for _, open := range p.includes {
			if open == path {
				return errAt(file, lineNo, "Recursive include file: %s", path)
			}
		}
		p.files++
		if p.files > maxFiles {
			return errAt(file, lineNo, "more than %d configuration files", maxFiles)
		}
		data, err := p.readFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return errAt(file, lineNo, "%s %s: %v", word, path, pathErr(err))
		}
		found++
		if err := p.parseFile(path, data, stack); err != nil {
			return err
		}
	}
	if found == 0 && !try {
		return errAt(file, lineNo, "%s %s: No matches", word, arg)
	}
	return nil
}
