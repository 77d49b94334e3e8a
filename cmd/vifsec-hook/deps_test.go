package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHookLinksNoDaemon: the hook runs at every libvirt domain start and
// talks to vifsecd only through the public client; it must not link the
// daemon, the data path, IKE, the state store or netlink (which once made
// it 233 packages and 10 MB).
func TestHookLinksNoDaemon(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/vifsec/vifsec/internal/api", // the server
		"github.com/vifsec/vifsec/internal/daemon",
		"github.com/vifsec/vifsec/internal/datapath",
		"github.com/vifsec/vifsec/internal/store",
		"github.com/vifsec/vifsec/sa/ike",
		"go.etcd.io/bbolt",
		"go.etcd.io/etcd",
		"github.com/vishvananda/netlink",
	}
	for _, p := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if p == f || strings.HasPrefix(p, f+"/") {
				t.Errorf("vifsec-hook links %s", p)
			}
		}
	}
}
