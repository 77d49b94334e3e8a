package ikectl

import (
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/testutil"
)

// TestBackToBackPPK: a policy with a post-quantum preshared key (RFC 8784)
// set through the daemon reaches the engine: the IKE SA both gateways make
// has its keys mixed with the PPK (show-ikesa PPK yes), the Child SAs
// pair, and neither gateway logs the PPK.
func TestBackToBackPPK(t *testing.T) {
	const ppk = "back-to-back post-quantum preshared key, 32+ bytes"
	w := newWire(t)
	a := newGateway(t, w, "a", "52:54:00:00:00:0a", 10, "2001:db8:1::121")
	b := newGateway(t, w, "b", "52:54:00:00:00:0b", 20, "2001:db8:2::5")
	pa := pskPolicy("p1", "vm1", "2001:db8:1::121/128", "2001:db8:2::/64", "2001:db8:2::5")
	pa.PPK, pa.PPKID, pa.PPKRequired = []byte(ppk), "ppk-1", true
	pb := pskPolicy("p1", "vm1", "2001:db8:2::5/128", "2001:db8:1::/64", "")
	pb.PPK, pb.PPKID = []byte(ppk), "ppk-1" // optional on the responder
	mustW(t)(a.d.CreatePolicy(pa))
	mustW(t)(b.d.CreatePolicy(pb))
	start(t, w, a, b)
	ra, rb := waitChildren(t, a, 1)[0], waitChildren(t, b, 1)[0]
	checkPair(t, a, b, ra, rb)
	for _, g := range []*gateway{a, b} {
		sas, err := g.d.IKESAs("t1")
		must(t, err)
		if len(sas) != 1 || sas[0].State != "ESTABLISHED" || !sas[0].PPK {
			t.Errorf("%s's IKE SAs: %+v; want one, established with the PPK", g.name, sas)
		}
		if strings.Contains(g.logs.String(), ppk) {
			t.Errorf("%s logged the PPK", g.name)
		}
	}
}

// TestBackToBackPPKRequiredRefused: a responder that requires a PPK the
// initiator does not have makes no SA.
func TestBackToBackPPKRequiredRefused(t *testing.T) {
	w := newWire(t)
	a := newGateway(t, w, "a", "52:54:00:00:00:0a", 10, "2001:db8:1::121")
	b := newGateway(t, w, "b", "52:54:00:00:00:0b", 20, "2001:db8:2::5")
	mustW(t)(a.d.CreatePolicy(pskPolicy("p1", "vm1", "2001:db8:1::121/128", "2001:db8:2::/64", "2001:db8:2::5")))
	pb := pskPolicy("p1", "vm1", "2001:db8:2::5/128", "2001:db8:1::/64", "")
	pb.PPK, pb.PPKID, pb.PPKRequired = []byte("back-to-back post-quantum preshared key, 32+ bytes"), "ppk-1", true
	mustW(t)(b.d.CreatePolicy(pb))
	start(t, w, a, b)
	testutil.WaitUntil(t, "b refuses the IKE SA for want of a PPK", 10*time.Second, func() bool { return strings.Contains(b.logs.String(), "post-quantum preshared key") })
	for _, g := range []*gateway{a, b} {
		if rows, _ := g.d.IPsecSAs("t1"); len(rows) != 0 {
			t.Errorf("%s has SAs without the required PPK: %+v", g.name, rows)
		}
	}
}
