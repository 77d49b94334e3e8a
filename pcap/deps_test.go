package pcap

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly: pcap is a floor that every layer's tests and
// test helpers may use, so it imports nothing but the standard library.
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/vifsec/vifsec/pcap" {
			t.Errorf("package pcap imports %s, which is not in the standard library", p)
		}
	}
}
