package cli

import (
	"strings"
	"unicode/utf8"
)

const (
	// DefaultColumns is the width doveadm assumes when stdout is not a terminal.
	DefaultColumns = 80
	// MinColumns is the narrowest terminal width doveadm honours.
	MinColumns = 30
	// sizingRows is how many rows doveadm buffers to size the columns; later rows are
	// printed with the widths the first ones gave.
	sizingRows = 100
)

// widths computes doveadm's table column widths. A column starts at its title's byte
// length and grows to its longest value (in characters). When the line is too long, columns
// are shrunk from the last one backwards towards their shortest value, but only a column
// that alone can absorb the excess is counted as progress: the halving of the others is
// not, so one pass usually ends the loop, as in 2.3.19. When the line is short, the Expand
// column (or the last one) gets half of the spare width.
func widths(hdrs []Header, rows [][]string, columns int) []int {
	n := len(hdrs)
	minL, maxL, length := make([]int, n), make([]int, n), make([]int, n)
	for i, h := range hdrs {
		minL[i], maxL[i], length[i] = len(h.Title), len(h.Title), len(h.Title)
	}
	if len(rows) > sizingRows {
		rows = rows[:sizingRows]
	}
	for _, row := range rows {
		for i := range hdrs {
			l := utf8.RuneCountInString(cell(row, i))
			minL[i] = min(minL[i], l)
			if l > maxL[i] {
				maxL[i], length[i] = l, l
			}
		}
	}
	total := -1
	for i := range hdrs {
		total += maxL[i] + 1
	}
	for total > columns {
		before := total
		for i := n - 1; i >= 0; i-- {
			d := length[i] - minL[i]
			if total-d <= columns {
				d = total - columns
				length[i] -= d
				total -= d
				break
			}
			if d > 0 {
				length[i] -= max(1, d/2)
			}
		}
		if total == before {
			break
		}
	}
	if total < columns {
		target := n - 1
		for i, h := range hdrs {
			if h.Flags&Expand != 0 {
				target = i
				break
			}
		}
		length[target] += (columns - total) / 2
	}
	return length
}

func pad(b *strings.Builder, s string, width int) {
	b.WriteString(s)
	for l := utf8.RuneCountInString(s); l < width; l++ {
		b.WriteByte(' ')
	}
}

func writeTable(b *strings.Builder, out *Output, columns int) {
	hdrs := out.Headers
	if len(hdrs) == 0 {
		return
	}
	if columns <= 0 {
		columns = DefaultColumns
	}
	w := widths(hdrs, out.Rows, max(columns, MinColumns))
	allHidden := true
	for _, h := range hdrs {
		allHidden = allHidden && h.Flags&HideTitle != 0
	}
	if !allHidden {
		for i, h := range hdrs {
			if i > 0 {
				b.WriteByte(' ')
			}
			pad(b, h.Title, w[i])
		}
		b.WriteByte('\n')
	}
	for _, row := range out.Rows {
		for i := range hdrs {
			if i > 0 {
				b.WriteByte(' ')
			}
			pad(b, cell(row, i), w[i])
		}
		b.WriteByte('\n')
	}
}
