package ikectl

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa/ike"
)

// TestVMLeavesQuietly: when a VM leaves its host (detached; in a fleet,
// moved elsewhere) while its initiating policy stays, dormant, the IKE SA
// and Child SA it had there go at once and nothing is sent from its
// address there (no Delete: the VM is not behind this host any more).
// The VM's new host, with the same address, sets up a new IKE SA whose
// INITIAL_CONTACT makes the peer drop the old one: the peer ends with
// exactly one Child SA, paired with the new host's.
func TestVMLeavesQuietly(t *testing.T) {
	w := newWire(t)
	a := newGateway(t, w, "a", "52:54:00:00:00:0a", 10, "2001:db8:1::121")
	b := newGateway(t, w, "b", "52:54:00:00:00:0b", 20, "2001:db8:2::5")
	mustW(t)(a.d.CreatePolicy(pskPolicy("p1", "vm1", "2001:db8:1::121/128", "2001:db8:2::/64", "2001:db8:2::5")))
	mustW(t)(b.d.CreatePolicy(pskPolicy("p1", "vm1", "2001:db8:2::5/128", "2001:db8:1::/64", "")))
	var left atomic.Bool
	var fromA atomic.Int32
	aAddr := netip.MustParseAddr("2001:db8:1::121")
	w.drop = func(p ike.Packet) bool {
		if left.Load() && p.Local.Addr() == aAddr {
			fromA.Add(1)
		}
		return false
	}
	start(t, w, a, b)
	old := waitChildren(t, b, 1)[0]
	waitChildren(t, a, 1)

	left.Store(true)
	must(t, a.d.DetachVM("vm1"))
	testutil.WaitUntil(t, "a has no IKE SA once its VM left", 10*time.Second, func() bool { sas, _ := a.d.IKESAs("t1"); return len(sas) == 0 })
	time.Sleep(100 * time.Millisecond) // anything a would send
	if n := fromA.Load(); n != 0 {
		t.Errorf("a sent %d datagrams from its VM's address after the VM left", n)
	}
	if sas, _ := b.d.IKESAs("t1"); len(sas) != 1 || sas[0].State != "ESTABLISHED" {
		t.Errorf("b's IKE SAs %+v; want the one it had (nobody told it)", sas)
	}

	// The VM's new host.
	a2 := newGateway(t, w, "a2", "52:54:00:00:00:0a", 10, "2001:db8:1::121")
	mustW(t)(a2.d.CreatePolicy(pskPolicy("p1", "vm1", "2001:db8:1::121/128", "2001:db8:2::/64", "2001:db8:2::5")))
	left.Store(false)
	start(t, w, a2)
	r2 := waitChildren(t, a2, 1)[0]
	testutil.WaitUntil(t, "b keeps only the new host's IKE SA and Child SA", 10*time.Second, func() bool {
		rows := waitChildren(t, b, 1)
		sas, _ := b.d.IKESAs("t1")
		return rows[0].InboundSPI != old.InboundSPI && len(sas) == 1
	})
	checkPair(t, a2, b, r2, waitChildren(t, b, 1)[0])
}
