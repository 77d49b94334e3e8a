package offloadtest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoUpwardImports: the offload packages and their test helpers sit
// below internal/ (the daemon's glue); nothing they build on, test helpers
// included, may come from there.
func TestNoUpwardImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}",
		"github.com/vifsec/vifsec/offload/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/vifsec/vifsec/internal/") || strings.HasPrefix(p, "github.com/vifsec/vifsec/cmd/") {
			t.Errorf("an offload package depends on %s, above it", p)
		}
	}
}
