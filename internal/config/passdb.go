package config

// Passdb is one passdb { } section. usher checks passwords itself only when a site asks for it
// (usher-product.md section 3); which drivers work is internal/passdb's business, so the
// section is kept as written, with its position for error messages.
type Passdb struct {
	Driver string // driver, e.g. passwd-file or static
	Args   string // args, unparsed
	File   string
	Line   int
}

// passdbSection records a passdb section. Settings other than driver and args exist in
// Dovecot (deny, master, result_*, ...) but usher has no use for them: they only warn.
func (a *applier) passdbSection(n *Node) {
	p := Passdb{File: n.File, Line: n.Line}
	for _, c := range n.Children {
		switch {
		case c.Section:
			a.warn(c, "section %s inside passdb is not used by usher; ignored", sectionName(c))
		case c.Key == "driver":
			p.Driver = c.Value
		case c.Key == "args":
			p.Args = c.Value
		default:
			a.warn(c, "passdb setting %s is not used by usher; ignored", c.Key)
		}
	}
	a.s.Passdbs = append(a.s.Passdbs, p)
}
