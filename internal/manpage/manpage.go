// Package manpage writes man(7) pages for vifsec's programs from the
// tables that drive their parsing (the CLI's verb table, the daemons'
// flag sets), so a page cannot list a flag the program does not take or
// miss one it does.
//
// What it must not do: import any other vifsec package (the hook and the
// CLI link it).
package manpage

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Page is one manual page.
type Page struct {
	Name     string // program name, e.g. vifsecd
	Section  int    // 8 for system administration commands
	Version  string // shown in the footer
	Summary  string // the NAME line's text after "name \-"
	Synopsis []string
	// Sections in order: DESCRIPTION, OPTIONS (see Options), others.
	Sections []Section
}

// Section is a titled part of a page: paragraphs of text, then items.
type Section struct {
	Title string
	Text  []string // paragraphs
	Items []Item   // tagged paragraphs (.TP)
}

// Item is one tagged paragraph: a flag or a command and what it does,
// and indented items under it (a command's flags).
type Item struct {
	Tag  string
	Text string
	Sub  []Item
}

// Write renders p as roff.
func (p *Page) Write(w io.Writer) error {
	var b strings.Builder
	up := strings.ToUpper(p.Name)
	fmt.Fprintf(&b, ".TH %s %d \"\" \"vifsec %s\" \"vifsec\"\n", up, p.Section, Escape(p.Version))
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", Escape(p.Name), Escape(p.Summary))
	if len(p.Synopsis) > 0 {
		b.WriteString(".SH SYNOPSIS\n.nf\n")
		for _, s := range p.Synopsis {
			b.WriteString(Escape(s) + "\n")
		}
		b.WriteString(".fi\n")
	}
	for _, s := range p.Sections {
		fmt.Fprintf(&b, ".SH %s\n", strings.ToUpper(Escape(s.Title)))
		for i, t := range s.Text {
			if i > 0 {
				b.WriteString(".PP\n")
			}
			b.WriteString(Escape(t) + "\n")
		}
		writeItems(&b, s.Items)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeItems(b *strings.Builder, items []Item) {
	for _, it := range items {
		fmt.Fprintf(b, ".TP\n.B %s\n%s\n", Escape(it.Tag), Escape(it.Text))
		if len(it.Sub) > 0 {
			b.WriteString(".RS\n")
			writeItems(b, it.Sub)
			b.WriteString(".RE\n")
		}
	}
}

// Escape makes s safe as roff text: backslashes doubled, hyphens as
// \- (so flags copy and paste), and a leading dot or quote guarded.
func Escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}

// FlagItems describes every flag of fs, in fs's order: "--name VALUE"
// with the usage text and its default.
func FlagItems(fs *flag.FlagSet, hidden ...string) []Item {
	var out []Item
	fs.VisitAll(func(f *flag.Flag) {
		for _, h := range hidden {
			if f.Name == h {
				return
			}
		}
		arg, usage := flag.UnquoteUsage(f)
		tag := "--" + f.Name
		if arg != "" {
			tag += " " + strings.ToUpper(arg)
		}
		text := usage
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		out = append(out, Item{Tag: tag, Text: text})
	})
	return out
}
