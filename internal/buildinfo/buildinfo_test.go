package buildinfo

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "1.2.3"
	if got := String("vifsecd"); !strings.HasPrefix(got, "vifsecd 1.2.3 (go") {
		t.Fatalf("String = %q, want it to start with %q", got, "vifsecd 1.2.3 (go")
	}
	Version = "dev"
	if got := String("vifsec"); !strings.HasPrefix(got, "vifsec dev") {
		t.Fatalf("String = %q, want a dev version", got)
	}
}
