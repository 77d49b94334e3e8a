package api

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly: the client package is imported by programs
// outside this module and by the libvirt hook; it imports nothing but the
// standard library.
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/vifsec/vifsec/api" {
			t.Errorf("package api imports %s, which is not in the standard library", p)
		}
	}
}
