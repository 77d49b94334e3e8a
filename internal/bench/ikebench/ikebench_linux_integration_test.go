//go:build linux

package ikebench

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/testutil"
)

// TestIntegrationNetns runs setups between two namespaces joined by a
// veth pair and checks that Close leaves no namespace behind.
func TestIntegrationNetns(t *testing.T) {
	testutil.NeedRoot(t, "ip")
	nw, err := Netns()
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			nw.Close()
		}
	})
	for _, s := range Suites {
		r, err := Setups(nw, s, 50, 8)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if r.Network != "netns+veth UDP" || r.N != 50 {
			t.Errorf("%+v", r)
		}
	}
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), nw.a) || strings.Contains(string(out), nw.b) {
		t.Errorf("namespaces left behind: %s", out)
	}
}
