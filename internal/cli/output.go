package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/usher-mail/usher/internal/jsonesc"
)

// Flag changes how a column is printed, as doveadm's header flags do.
type Flag uint8

const (
	// HideTitle leaves the title out (table: the header line is skipped when every column
	// has it; flow: no "title=").
	HideTitle Flag = 1 << iota
	// Expand marks the table column that receives the spare width; without one, the last
	// column does.
	Expand
	// Number columns are emitted as raw JSON numbers by the json formatter.
	Number
)

// Header is one column: Key is the JSON key, Title what table, tab and flow print.
type Header struct {
	Key, Title string
	Flags      Flag
}

// Output is one command's result: columns and rows of values in column order.
type Output struct {
	Headers []Header
	Rows    [][]string
}

// Format names a formatter.
type Format string

// The formatters doveadm has and usher supports.
const (
	Table     Format = "table"
	Tab       Format = "tab"
	Flow      Format = "flow"
	JSON      Format = "json"
	Formatted Format = "formatted"
)

// ParseFormat accepts a -f value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Table, Tab, Flow, JSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown formatter %q (use table, tab, flow or json)", s)
}

// Write renders out with format f. columns is the terminal width for the table formatter;
// template is the layout of the formatted formatter (%{key} expands to the row's value).
func Write(w io.Writer, out *Output, f Format, columns int, template string) error {
	var b strings.Builder
	switch f {
	case Tab:
		writeTab(&b, out)
	case Flow:
		writeFlow(&b, out)
	case JSON:
		writeJSON(&b, out)
	case Formatted:
		writeFormatted(&b, out, template)
	default:
		writeTable(&b, out, columns)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cell(row []string, i int) string {
	if i < len(row) {
		return row[i]
	}
	return ""
}

func writeTab(b *strings.Builder, out *Output) {
	if len(out.Headers) == 0 {
		return
	}
	// Unlike table and flow, tab prints every title, hidden or not.
	for i, h := range out.Headers {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(h.Title)
	}
	b.WriteByte('\n')
	for _, row := range out.Rows {
		for i := range out.Headers {
			if i > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(cell(row, i))
		}
		b.WriteByte('\n')
	}
}

func writeFlow(b *strings.Builder, out *Output) {
	for _, row := range out.Rows {
		for i, h := range out.Headers {
			if i > 0 {
				b.WriteByte(' ')
			}
			if h.Flags&HideTitle == 0 {
				b.WriteString(h.Title)
				b.WriteByte('=')
			}
			b.WriteString(cell(row, i))
		}
		b.WriteByte('\n')
	}
}

// writeJSON prints what doveadm -f json prints: no whitespace, no trailing newline. Unlike
// 2.3.19 (whose `who` closes the array after the first row), the result is always valid
// JSON, as usher's API is.
func writeJSON(b *strings.Builder, out *Output) {
	b.WriteByte('[')
	for r, row := range out.Rows {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for i, h := range out.Headers {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			b.WriteString(jsonesc.Escape(h.Key))
			b.WriteString(`":`)
			v := cell(row, i)
			if h.Flags&Number != 0 && isNumber(v) {
				b.WriteString(v)
				continue
			}
			b.WriteByte('"')
			b.WriteString(jsonesc.Escape(v))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
}

func writeFormatted(b *strings.Builder, out *Output, template string) {
	for _, row := range out.Rows {
		b.WriteString(expand(template, out.Headers, row))
	}
}

// expand replaces each %{key} of template with the row's value for key; unknown keys
// expand to nothing.
func expand(template string, hdrs []Header, row []string) string {
	var b strings.Builder
	for {
		i := strings.Index(template, "%{")
		if i < 0 {
			b.WriteString(template)
			return b.String()
		}
		j := strings.IndexByte(template[i:], '}')
		if j < 0 {
			b.WriteString(template)
			return b.String()
		}
		b.WriteString(template[:i])
		key := template[i+2 : i+j]
		for k, h := range hdrs {
			if h.Key == key {
				b.WriteString(cell(row, k))
				break
			}
		}
		template = template[i+j+1:]
	}
}
