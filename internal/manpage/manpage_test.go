package manpage

import (
	"flag"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("state", "/var/lib/vifsec", "state `DIR`")
	fs.Bool("gro", true, "coalesce")
	fs.Bool("man", false, "hidden")
	p := &Page{Name: "vifsecd", Section: 8, Version: "1.0", Summary: "the vifsec daemon",
		Synopsis: []string{"vifsecd [--state DIR]"},
		Sections: []Section{{Title: "Description", Text: []string{"one", ".two"}}, {Title: "Options", Items: FlagItems(fs, "man")},
			{Title: "Commands", Items: []Item{{Tag: "x add", Text: "adds", Sub: []Item{{Tag: "--n N", Text: "n"}}}}}}}
	var b strings.Builder
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		".TH VIFSECD 8", ".SH NAME\nvifsecd \\- the vifsec daemon\n", ".SH SYNOPSIS\n.nf\nvifsecd [\\-\\-state DIR]\n.fi\n",
		".SH DESCRIPTION\none\n.PP\n\\&.two\n", ".TP\n.B \\-\\-state DIR\nstate DIR (default /var/lib/vifsec)\n",
		".B \\-\\-gro\ncoalesce (default true)\n",
		".TP\n.B x add\nadds\n.RS\n.TP\n.B \\-\\-n N\nn\n.RE\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "hidden") {
		t.Errorf("hidden flag listed:\n%s", got)
	}
}
