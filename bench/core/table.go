package core

import (
	"strings"
)

// OrDash is s, or "-" when ok is false: a cell with no figure.
func OrDash(ok bool, s string) string {
	if ok {
		return s
	}
	return "-"
}

// Table aligns columns: numbers to the right, the columns in left to the
// left. A nil row prints as an empty line.
type Table struct {
	Head []string
	Left map[int]bool
	Rows [][]string
}

// Write writes the table to b, each line starting with indent, the
// columns two spaces apart.
func (t *Table) Write(b *strings.Builder, indent string) {
	width := make([]int, len(t.Head))
	for _, row := range append([][]string{t.Head}, t.Rows...) {
		for i, c := range row {
			width[i] = max(width[i], len(c))
		}
	}
	line := func(row []string) {
		b.WriteString(indent)
		for i, c := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-len(c))
			if t.Left[i] {
				if i == len(row)-1 {
					pad = ""
				}
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
		}
		b.WriteString("\n")
	}
	line(t.Head)
	for _, row := range t.Rows {
		if row == nil {
			b.WriteString("\n")
			continue
		}
		line(row)
	}
}

// Plural is "s" unless n is 1.
func Plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
