package daemon

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"github.com/vifsec/vifsec/header"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/ikeconf"
	"github.com/vifsec/vifsec/internal/pkitest"
	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

const testPSK = "correct horse battery staple 42"

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// pskPolicy is a transport policy of vm1 (2001:db8:1::121) with a peer.
func pskPolicy(name string) ikeconf.Policy {
	return ikeconf.Policy{
		Tenant: "t1", Name: name, VM: "vm1",
		LocalSubnets: pfx("2001:db8:1::121/128"), RemoteSubnets: pfx("2001:db8:2::/64"),
		RemoteAddress: netip.MustParseAddr("2001:db8:2::5"),
		Auth:          ikeconf.AuthPSK, PSK: []byte(testPSK),
	}
}

// ikeView is the IKE state, secrets included, for exact comparisons.
type ikeView struct {
	Policies map[string]ikeconf.Policy
	Certs    map[string]certRecord
	CRLs     []CRLInfo
	Children int
}

func observeIKE(d *Daemon) ikeView {
	d.mu.RLock()
	v := ikeView{Policies: map[string]ikeconf.Policy{}, Certs: map[string]certRecord{}, Children: len(d.ike.children)}
	for k, p := range d.ike.policies {
		v.Policies[k] = p.Clone()
	}
	for k, c := range d.ike.certs {
		var r certRecord
		if err := json.Unmarshal(encodeCertificate(c), &r); err != nil {
			panic(err)
		}
		v.Certs[k] = r
	}
	d.mu.RUnlock()
	v.CRLs, _ = d.CRLs("")
	return v
}

type pki struct {
	ca, other *pkitest.CA
	srv       *pkitest.Leaf
}

func newPKI() pki {
	ca := pkitest.NewCA("vifsec test CA")
	return pki{ca: ca, other: pkitest.NewCA("someone else's CA"), srv: ca.Issue("gw.example.com", "gw.example.com")}
}

// setupIKE is setup plus a server certificate "srv" and an IPsec CA "ca"
// of tenant t1.
func setupIKE(t *testing.T, st store.Store, k pki) *Daemon {
	t.Helper()
	d := setup(t, st)
	_, err := d.InstallCertificate("t1", "srv", ikeconf.CertServer, k.srv.ServerPEM(k.ca))
	must(t, err)
	_, err = d.InstallCertificate("t1", "ca", ikeconf.CertClientCA, k.ca.PEM())
	must(t, err)
	_, err = d.AddCACertificates("t1", []string{"ca"})
	must(t, err)
	return d
}

func TestPolicyLifecycle(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	p := pskPolicy("pol1")
	w, err := d.CreatePolicy(p)
	must(t, err)
	if len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
	if len(p.PSK) != len(testPSK) || !bytes.Equal(p.PSK, make([]byte, len(testPSK))) {
		t.Errorf("CreatePolicy did not zero the caller's PSK")
	}
	if st.Get(store.KindPolicy, "t1/pol1") == nil {
		t.Fatal("policy not stored under TENANT/NAME")
	}
	infos, err := d.Policies("t1")
	must(t, err)
	if len(infos) != 1 || !infos[0].PSKSet || infos[0].Policy.PSK != nil || infos[0].Policy.Mode != sa.ModeTransport ||
		infos[0].Local != netip.MustParseAddr("2001:db8:1::121") || !infos[0].Policy.LocalPorts.IsAny() {
		t.Fatalf("Policies = %+v", infos)
	}
	// Short PSK: accepted with a warning.
	p2 := pskPolicy("pol2")
	p2.PSK = []byte("short")
	w, err = d.CreatePolicy(p2)
	must(t, err)
	if len(w) != 1 || !strings.Contains(w[0], "16") {
		t.Errorf("short PSK warnings %q", w)
	}
	// Modify: new remote address, tunnel mode; the PSK stays.
	_, err = d.ModifyPolicy("t1", "pol1", func(p *ikeconf.Policy) error {
		p.Mode = sa.ModeTunnel
		p.RemoteAddress = netip.MustParseAddr("2001:db8:ff::1")
		return nil
	})
	must(t, err)
	infos, _ = d.Policies("t1")
	if got := infos[0].Policy; got.Mode != sa.ModeTunnel || got.RemoteAddress != netip.MustParseAddr("2001:db8:ff::1") || !infos[0].PSKSet {
		t.Errorf("after modify: %+v", infos[0])
	}
	if string(d.ike.policies["t1/pol1"].PSK) != testPSK {
		t.Errorf("modify lost the PSK")
	}
	// A VM with policies may be detached (a libvirt domain stops): its
	// policies stay, dormant, and wake when it is attached again.
	v1 := d.vms["vm1"].vm
	must(t, d.DetachVM("vm1"))
	if infos, _ = d.Policies("t1"); len(infos) != 2 {
		t.Fatalf("after detach: %d policies, want 2 (dormant)", len(infos))
	}
	if cfg := d.IKEConfig(); cfg.Policies[0].Scope != (sa.Scope{}) || cfg.Policies[0].Local.IsValid() {
		t.Errorf("dormant policy has scope %v, local %v", cfg.Policies[0].Scope, cfg.Policies[0].Local)
	}
	must(t, d.AttachVM(v1))
	if cfg := d.IKEConfig(); cfg.Policies[0].Scope == (sa.Scope{}) {
		t.Error("policy did not wake when its VM came back")
	}
	// A policy may name a VM not attached yet: accepted with a warning.
	later := pskPolicy("later")
	later.VM = "vm9"
	w, err = d.CreatePolicy(later)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "vm9") {
		t.Errorf("policy for a VM not attached yet: %v %v", w, err)
	}
	must(t, d.DeletePolicy("t1", "later"))
	// Policies protect the tenant from removal.
	if err := d.RemoveTenant("t1"); CodeOf(err) != CodeInUse {
		t.Errorf("RemoveTenant(t1) = %v, want in_use", err)
	}
	must(t, d.DeletePolicy("t1", "pol1"))
	must(t, d.DeletePolicy("t1", "pol2"))
	if st.Get(store.KindPolicy, "t1/pol1") != nil {
		t.Error("deleted policy still stored")
	}
	must(t, d.DetachVM("vm1"))
}

func TestPolicyDefaultsAndUnderlay(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	p := ikeconf.Policy{Tenant: "t1", Name: "u1", LocalSubnets: pfx("192.0.2.1/32"), RemoteSubnets: pfx("192.0.2.2/32"),
		RemoteAddress: netip.MustParseAddr("192.0.2.2"), Protocol: ikeconf.ProtoNumUDP, RemotePorts: ikeconf.PortRange{First: 4789, Last: 4789},
		Auth: ikeconf.AuthPSK, PSK: []byte(testPSK)}
	w, err := d.CreatePolicy(p)
	must(t, err)
	if len(w) != 1 || !strings.Contains(w[0], "--vxlan-local") {
		t.Errorf("underlay policy without uplink: warnings %q, want one naming --vxlan-local", w)
	}
	must(t, d.SetUplink(Uplink{Dev: "eth0", Overlay: OverlayVXLAN, VXLANLocal: netip.MustParseAddr("192.0.2.1")}))
	infos, _ := d.Policies("")
	if infos[0].Local != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("underlay policy speaks from %v, want the uplink's --vxlan-local", infos[0].Local)
	}
	// Port ranges are fine without --vm.
	_, err = d.ModifyPolicy("t1", "u1", func(p *ikeconf.Policy) error { p.RemotePorts = ikeconf.PortRange{First: 4000, Last: 5000}; return nil })
	must(t, err)
}

func TestIKERefusalsChangeNothing(t *testing.T) {
	st := storetest.NewMemory()
	k := newPKI()
	d := setupIKE(t, st, k)
	must(t, d.AddTenant(tenant.Tenant{Name: "t2"}))
	must(t, d.AttachVM(vm("vm3", "t2", "52:54:00:00:00:03", 0)))
	noIP := vm("vm4", "t1", "52:54:00:00:00:04", 0)
	noIP.IPs = nil
	must(t, d.AttachVM(noIP))
	_, err := d.CreatePolicy(pskPolicy("pol1"))
	must(t, err)
	pki := pskPolicy("pki1")
	pki.Auth, pki.PSK, pki.CertName, pki.RemoteIdentity = ikeconf.AuthPKI, nil, "srv", ikeconf.AnyIdentity
	_, err = d.CreatePolicy(pki)
	must(t, err)
	_, err = d.AddCRL("t1", k.ca.CRL())
	must(t, err)

	mod := func(f func(p *ikeconf.Policy)) ikeconf.Policy {
		p := pskPolicy("x")
		f(&p)
		return p
	}
	create := func(p ikeconf.Policy) func() error { return func() error { _, err := d.CreatePolicy(p); return err } }
	install := func(name string, typ ikeconf.CertType, pem []byte) func() error {
		return func() error { _, err := d.InstallCertificate("t1", name, typ, pem); return err }
	}
	leaf := k.ca.Issue("other.example.com")
	mismatched := append(k.srv.CertPEM(), leaf.KeyPEM()...)
	encrypted := append(k.srv.CertPEM(), []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")...)

	tests := []struct {
		name string
		do   func() error
		code Code
		flag string
	}{
		{"duplicate name", create(pskPolicy("pol1")), CodeExists, "--name"},
		{"unknown tenant", create(mod(func(p *ikeconf.Policy) { p.Tenant = "nosuch" })), CodeNotFound, "--tenant"},
		{"vm of other tenant", create(mod(func(p *ikeconf.Policy) { p.VM = "vm3" })), CodeInvalid, "--vm"},
		{"vm without ip and a subnet", create(mod(func(p *ikeconf.Policy) { p.VM = "vm4"; p.LocalSubnets = pfx("2001:db8:1::/64") })), CodeInvalid, "--vm"},
		{"local subnet not the vm's", create(mod(func(p *ikeconf.Policy) { p.LocalSubnets = pfx("2001:db8:9::/64") })), CodeInvalid, "--local-ip-subnets"},
		{"no local subnets", create(mod(func(p *ikeconf.Policy) { p.LocalSubnets = nil })), CodeInvalid, "--local-ip-subnets"},
		{"mixed families", create(mod(func(p *ikeconf.Policy) { p.RemoteSubnets = pfx("2001:db8:2::/64", "192.0.2.0/24") })), CodeInvalid, "--remote-ip-subnets"},
		{"families differ", create(mod(func(p *ikeconf.Policy) { p.RemoteSubnets = pfx("192.0.2.0/24") })), CodeInvalid, "different address families"},
		{"host bits", create(mod(func(p *ikeconf.Policy) { p.RemoteSubnets = []netip.Prefix{netip.MustParsePrefix("2001:db8:2::1/64")} })), CodeInvalid, "--remote-ip-subnets"},
		{"ports without protocol", create(mod(func(p *ikeconf.Policy) { p.LocalPorts = ikeconf.PortRange{First: 2049, Last: 2049} })), CodeInvalid, "--local-ports"},
		{"port range with vm", create(mod(func(p *ikeconf.Policy) {
			p.Protocol = ikeconf.ProtoNumTCP
			p.LocalPorts = ikeconf.PortRange{First: 1000, Last: 2000}
		})), CodeInvalid, "--local-ports"},
		{"protocol number with vm", create(mod(func(p *ikeconf.Policy) { p.Protocol = 132 })), CodeInvalid, "--protocols"},
		{"icmp with v6", create(mod(func(p *ikeconf.Policy) { p.Protocol = ikeconf.ProtoNumICMP })), CodeInvalid, "--protocols"},
		{"remote address outside subnets", create(mod(func(p *ikeconf.Policy) { p.RemoteAddress = netip.MustParseAddr("2001:db8:3::1") })), CodeInvalid, "--remote-address"},
		{"multicast remote address", create(mod(func(p *ikeconf.Policy) { p.Mode = sa.ModeTunnel; p.RemoteAddress = netip.MustParseAddr("ff02::1") })), CodeInvalid, "--remote-address"},
		{"anything with psk", create(mod(func(p *ikeconf.Policy) { p.RemoteIdentity = ikeconf.AnyIdentity })), CodeInvalid, "--remote-identity"},
		{"identity control char", create(mod(func(p *ikeconf.Policy) { p.LocalIdentity = "a\nb" })), CodeInvalid, "--local-identity"},
		{"local identity anything", create(mod(func(p *ikeconf.Policy) { p.LocalIdentity = ikeconf.AnyIdentity })), CodeInvalid, "--local-identity"},
		{"remote identity unparsable", create(mod(func(p *ikeconf.Policy) { p.RemoteIdentity = "keyid:zz" })), CodeInvalid, "--remote-identity"},
		{"psk empty", create(mod(func(p *ikeconf.Policy) { p.PSK = nil })), CodeInvalid, "--auth-method PSK"},
		{"psk with cert", create(mod(func(p *ikeconf.Policy) { p.CertName = "srv" })), CodeInvalid, "--cert-name"},
		{"pki without cert", create(mod(func(p *ikeconf.Policy) { p.Auth, p.PSK, p.RemoteIdentity = ikeconf.AuthPKI, nil, ikeconf.AnyIdentity })), CodeInvalid, "--cert-name"},
		{"pki unknown cert", create(mod(func(p *ikeconf.Policy) {
			p.Auth, p.PSK, p.CertName, p.RemoteIdentity = ikeconf.AuthPKI, nil, "nosuch", ikeconf.AnyIdentity
		})), CodeNotFound, "--cert-name"},
		{"pki with ca cert", create(mod(func(p *ikeconf.Policy) {
			p.Auth, p.PSK, p.CertName, p.RemoteIdentity = ikeconf.AuthPKI, nil, "ca", ikeconf.AnyIdentity
		})), CodeInvalid, "--cert-name"},
		{"pki without remote identity", create(mod(func(p *ikeconf.Policy) { p.Auth, p.PSK, p.CertName = ikeconf.AuthPKI, nil, "srv" })), CodeInvalid, "--remote-identity"},
		{"no auth", create(mod(func(p *ikeconf.Policy) { p.Auth = ikeconf.AuthInvalid })), CodeInvalid, "--auth-method"},
		{"bad ike proposal", create(mod(func(p *ikeconf.Policy) { p.IKEProposals = []string{"aes256--sha256"} })), CodeInvalid, "--ike-proposals"},
		{"bad esp proposal", create(mod(func(p *ikeconf.Policy) { p.ESPProposals = []string{"AES!"} })), CodeInvalid, "--esp-proposals"},
		{"modify unknown", func() error {
			_, err := d.ModifyPolicy("t1", "nosuch", func(*ikeconf.Policy) error { return nil })
			return err
		}, CodeNotFound, "--name"},
		{"modify breaks a rule", func() error {
			_, err := d.ModifyPolicy("t1", "pol1", func(p *ikeconf.Policy) error { p.RemoteIdentity = ikeconf.AnyIdentity; return nil })
			return err
		}, CodeInvalid, "--remote-identity"},
		{"modify rename", func() error {
			_, err := d.ModifyPolicy("t1", "pol1", func(p *ikeconf.Policy) error { p.Name = "other"; return nil })
			return err
		}, CodeInvalid, "--name"},
		{"delete unknown", func() error { return d.DeletePolicy("t1", "nosuch") }, CodeNotFound, "--name"},
		{"delete unknown tenant", func() error { return d.DeletePolicy("nosuch", "pol1") }, CodeNotFound, "--tenant"},
		{"cert duplicate", install("srv", ikeconf.CertServer, k.srv.ServerPEM()), CodeExists, "--cert-name"},
		{"cert unknown tenant", func() error {
			_, err := d.InstallCertificate("nosuch", "c", ikeconf.CertServerCA, k.ca.PEM())
			return err
		}, CodeNotFound, "--tenant"},
		{"cert bad name", install("-c", ikeconf.CertServerCA, k.ca.PEM()), CodeInvalid, "--cert-name"},
		{"cert no type", install("c", ikeconf.CertInvalid, k.ca.PEM()), CodeInvalid, "--type"},
		{"server without key", install("c", ikeconf.CertServer, k.srv.CertPEM()), CodeInvalid, "private key"},
		{"server key mismatch", install("c", ikeconf.CertServer, mismatched), CodeInvalid, "belongs to none"},
		{"server encrypted key", install("c", ikeconf.CertServer, encrypted), CodeInvalid, "encrypted"},
		{"ca with key", install("c", ikeconf.CertServerCA, k.srv.ServerPEM()), CodeInvalid, "private key"},
		{"ca not a ca", install("c", ikeconf.CertServerCA, leaf.CertPEM()), CodeInvalid, "not a CA"},
		{"not pem", install("c", ikeconf.CertServerCA, []byte("hello")), CodeInvalid, "PEM"},
		{"empty pem", install("c", ikeconf.CertServerCA, nil), CodeInvalid, "empty"},
		{"trailing junk", install("c", ikeconf.CertServerCA, append(k.ca.PEM(), "junk"...)), CodeInvalid, "not PEM"},
		{"cert in use", func() error { return d.DeleteCertificate("t1", "srv") }, CodeInUse, "pki1"},
		{"cert delete unknown", func() error { return d.DeleteCertificate("t1", "nosuch") }, CodeNotFound, "--cert-name"},
		{"ca add unknown", func() error { _, err := d.AddCACertificates("t1", []string{"ca", "nosuch"}); return err }, CodeNotFound, "--ca-certs"},
		{"ca add server", func() error { _, err := d.AddCACertificates("t1", []string{"srv"}); return err }, CodeInvalid, "--ca-certs"},
		{"ca add none", func() error { _, err := d.AddCACertificates("t1", nil); return err }, CodeInvalid, "--ca-certs"},
		{"ca remove not ca", func() error { return d.RemoveCACertificate("t1", "srv") }, CodeNotFound, "--ca-certs"},
		{"crl of unknown ca", func() error { _, err := d.AddCRL("t1", k.other.CRL()); return err }, CodeInvalid, "none of tenant t1's CA"},
		{"crl older", func() error { _, err := d.AddCRL("t1", k.ca.CRLNumber(0)); return err }, CodeInvalid, "older"},
		{"crl not a crl", func() error { _, err := d.AddCRL("t1", k.ca.PEM()); return err }, CodeInvalid, "X509 CRL"},
		{"crl unknown tenant", func() error { _, err := d.AddCRL("nosuch", k.ca.CRL()); return err }, CodeNotFound, "--tenant"},
		{"tenant with policies", func() error { return d.RemoveTenant("t1") }, CodeInUse, "vm1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refused(t, everything(d, st), tt.do, tt.code, tt.flag)
		})
	}
	// Tenant removal names the IKE objects once the VMs are gone.
	must(t, d.DeletePolicy("t1", "pol1"))
	must(t, d.DeletePolicy("t1", "pki1"))
	for _, v := range []string{"vm1", "vm2", "vm4"} {
		must(t, d.DetachVM(v))
	}
	if err := d.RemoveTenant("t1"); CodeOf(err) != CodeInUse || !strings.Contains(err.Error(), "certificate ca, srv") {
		t.Errorf("RemoveTenant(t1) = %v, want in_use naming the certificates", err)
	}
}

func TestCertificatesAndCRLs(t *testing.T) {
	st := storetest.NewMemory()
	k := newPKI()
	d := setup(t, st)
	// An EC key, and the chain given before the certificate.
	w, err := d.InstallCertificate("t1", "srv", ikeconf.CertServer, append(append(k.ca.PEM(), k.srv.CertPEM()...), k.srv.ECKeyPEM()...))
	must(t, err)
	if len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
	w, err = d.InstallCertificate("t1", "ca", ikeconf.CertServerCA, append(k.ca.PEM(), k.other.PEM()...))
	must(t, err)
	if len(w) != 1 || !strings.Contains(w[0], "ca-certificate add") {
		t.Errorf("CA install warnings %q, want the ca-certificate add hint", w)
	}
	expired := k.ca.IssueValid("old", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	w, err = d.InstallCertificate("t1", "old", ikeconf.CertServer, expired.ServerPEM())
	must(t, err)
	if len(w) != 1 || !strings.Contains(w[0], "expired") {
		t.Errorf("expired certificate warnings %q", w)
	}
	infos, err := d.Certificates("t1")
	must(t, err)
	if len(infos) != 3 || infos[2].Name != "srv" || infos[2].Subject != "CN=gw.example.com,O=vifsec test" || !infos[2].KeySet || infos[2].Count != 2 {
		t.Fatalf("Certificates = %+v", infos)
	}
	if infos[0].Name != "ca" || infos[0].KeySet || infos[0].IPsecCA || infos[0].Count != 2 {
		t.Errorf("ca = %+v", infos[0])
	}
	if c := d.ike.certs["t1/srv"]; c.Certs[0].Subject.CommonName != "gw.example.com" {
		t.Errorf("the certificate the key belongs to is not first: %s", c.Certs[0].Subject)
	}
	w, err = d.AddCACertificates("t1", []string{"ca", "ca"})
	must(t, err)
	if len(w) != 1 {
		t.Errorf("adding a CA twice: warnings %q, want one", w)
	}
	infos, _ = d.Certificates("t1")
	if !infos[0].IPsecCA {
		t.Error("ca not marked as an IPsec CA")
	}
	// CRLs of both CAs in the install; a newer one replaces.
	must2(t)(d.AddCRL("t1", k.ca.CRL()))
	must2(t)(d.AddCRL("t1", k.other.CRL(k.srv.Cert)))
	must2(t)(d.AddCRL("t1", k.ca.CRL(expired.Cert)))
	crls, err := d.CRLs("t1")
	must(t, err)
	if len(crls) != 2 {
		t.Fatalf("CRLs = %+v", crls)
	}
	for _, c := range crls {
		if c.CAName != "ca" || c.Number.Int64() != 2 && c.Number.Int64() != 1 {
			t.Errorf("CRL %+v", c)
		}
	}
	if n := len(st.Get(store.KindCRL, crlKeyOf(t, d, k.ca))); n == 0 {
		t.Error("CRL not stored")
	}
	// Deleting the CA deletes its CRLs.
	must(t, d.RemoveCACertificate("t1", "ca"))
	must(t, d.DeleteCertificate("t1", "ca"))
	if crls, _ := d.CRLs(""); len(crls) != 0 {
		t.Errorf("CRLs left after their CA was deleted: %+v", crls)
	}
}

func must2(t *testing.T) func([]string, error) {
	return func(_ []string, err error) {
		t.Helper()
		must(t, err)
	}
}

func crlKeyOf(t *testing.T, d *Daemon, ca *pkitest.CA) string {
	for k, l := range d.ike.crls {
		if bytes.Equal(l.List().RawIssuer, ca.Cert.RawSubject) {
			return k
		}
	}
	t.Fatalf("no CRL of %s", ca.Cert.Subject)
	return ""
}

func TestIKERestoreIsExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.OpenBolt(path, 0)
	must(t, err)
	k := newPKI()
	d := setupIKE(t, st, k)
	_, err = d.InstallCertificate("t1", "other", ikeconf.CertServerCA, k.other.PEM())
	must(t, err)
	must2(t)(d.AddCRL("t1", k.ca.CRL(k.srv.Cert)))
	p := pskPolicy("pol1")
	p.Protocol, p.LocalPorts, p.IKEProposals, p.ESPProposals = ikeconf.ProtoNumTCP, ikeconf.PortRange{First: 2049, Last: 2049}, []string{"aes256gcm16-prfsha384-ecp384", "aes128-sha256-modp2048"}, []string{"aes256gcm16"}
	p.LocalIdentity, p.RemoteIdentity = "gw.example.com", "client@example.com"
	p.ForceEncap = true // --encapsulation udp
	must2(t)(d.CreatePolicy(p))
	p2 := pskPolicy("pki")
	p2.Auth, p2.PSK, p2.CertName, p2.RemoteIdentity, p2.Mode = ikeconf.AuthPKI, nil, "srv", ikeconf.AnyIdentity, sa.ModeTunnel
	p2.RemoteAddress = netip.Addr{}
	must2(t)(d.CreatePolicy(p2))
	must(t, d.SetUplink(Uplink{Dev: "eth0", Overlay: OverlayVXLAN, VXLANLocal: netip.MustParseAddr("192.0.2.1")}))
	u := ikeconf.Policy{Tenant: "t1", Name: "u", LocalSubnets: pfx("192.0.2.1/32"), RemoteSubnets: pfx("192.0.2.0/24"), Protocol: 47,
		Auth: ikeconf.AuthPSK, PSK: []byte{0, 1, 2, 0xff}}
	must2(t)(d.CreatePolicy(u))
	before, ikeBefore := observe(d), observeIKE(d)
	d2, _ := reopen(t, st, path)
	if after := observe(d2); !reflect.DeepEqual(before, after) {
		t.Errorf("restored state differs")
	}
	if after := observeIKE(d2); !reflect.DeepEqual(ikeBefore, after) {
		t.Errorf("restored IKE state differs:\nbefore %+v\nafter  %+v", ikeBefore, after)
	}
	if got := d2.ike.policies["t1/u"].PSK; !bytes.Equal(got, []byte{0, 1, 2, 0xff}) {
		t.Errorf("binary PSK restored as %x", got)
	}
	c := d2.ike.certs["t1/srv"]
	if c.Key == nil || !k.srv.Key.PublicKey.Equal(c.Key.Public()) {
		t.Error("server key not restored")
	}
}

func TestRestoreRefusesBadIKE(t *testing.T) {
	k := newPKI()
	tn := store.Put(store.KindTenant, "t1", mustJSON(tenant.Tenant{Name: "t1", DefaultAction: tenant.ActionNone}))
	good := pskPolicy("p")
	good.VM = ""
	for name, rec := range map[string]store.Op{
		"policy of ghost tenant": store.Put(store.KindPolicy, "ghost/p", encodePolicy(&ikeconf.Policy{Tenant: "ghost", Name: "p", LocalSubnets: good.LocalSubnets, RemoteSubnets: good.RemoteSubnets, Mode: sa.ModeTransport, Auth: ikeconf.AuthPSK, PSK: []byte("x")})),
		"policy wrong name":      store.Put(store.KindPolicy, "t1/q", encodePolicy(&ikeconf.Policy{Tenant: "t1", Name: "p", LocalSubnets: good.LocalSubnets, RemoteSubnets: good.RemoteSubnets, Mode: sa.ModeTransport, Auth: ikeconf.AuthPSK, PSK: []byte("x")})),
		"policy without psk":     store.Put(store.KindPolicy, "t1/p", encodePolicy(&ikeconf.Policy{Tenant: "t1", Name: "p", LocalSubnets: good.LocalSubnets, RemoteSubnets: good.RemoteSubnets, Mode: sa.ModeTransport, Auth: ikeconf.AuthPSK})),
		"cert not a ca":          store.Put(store.KindCertificate, "t1/c", mustJSON(certRecord{Tenant: "t1", Name: "c", Type: "server-ca", Certs: [][]byte{k.srv.Cert.Raw}})),
		"crl without its ca":     store.Put(store.KindCRL, "t1/x", mustJSON(crlRecord{Tenant: "t1", CA: "ca", DER: pemBody(k.ca.CRL())})),
	} {
		t.Run(name, func(t *testing.T) {
			st := storetest.NewMemory()
			must(t, st.Commit([]store.Op{tn, rec}))
			if _, err := New(st, nil); err == nil || !strings.Contains(err.Error(), string(rec.Kind)+` "`+rec.Name+`"`) {
				t.Fatalf("New = %v, want an error naming %s %q", err, rec.Kind, rec.Name)
			}
		})
	}
}

// TestSecretsNeverLogged runs every IKE operation with a logger and
// checks that neither the PSK nor the private key appears in any form.
func TestSecretsNeverLogged(t *testing.T) {
	var logs bytes.Buffer
	st := storetest.NewMemory()
	d, err := New(st, &Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	must(t, err)
	must(t, d.AddTenant(tenant.Tenant{Name: "t1"}))
	must(t, d.AttachVM(vm("vm1", "t1", "52:54:00:00:00:01", 10)))
	k := newPKI()
	keyPEM := k.srv.KeyPEM()
	must2(t)(d.InstallCertificate("t1", "srv", ikeconf.CertServer, k.srv.ServerPEM()))
	must2(t)(d.CreatePolicy(pskPolicy("pol1")))
	_, err = d.ModifyPolicy("t1", "pol1", func(p *ikeconf.Policy) error { p.PSK = []byte(testPSK + "2"); return nil })
	must(t, err)
	must(t, d.DeletePolicy("t1", "pol1"))
	must(t, d.DeleteCertificate("t1", "srv"))
	der := pemBody(keyPEM)
	for _, secret := range []string{testPSK, hex.EncodeToString([]byte(testPSK)), base64.StdEncoding.EncodeToString([]byte(testPSK)),
		hex.EncodeToString(der), base64.StdEncoding.EncodeToString(der)[:40], string(keyPEM[28:80])} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log holds a secret (%.12s…):\n%s", secret, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "ike policy created") {
		t.Errorf("nothing logged:\n%s", logs.String())
	}
}

func TestIKEChildren(t *testing.T) {
	st := storetest.NewMemory()
	d := setup(t, st)
	must2(t)(d.CreatePolicy(pskPolicy("pol1")))
	scope := d.Snapshot().VMs[0]
	vmScope := sa.Scope{VLAN: scope.VM.VLAN, MAC: header.MAC(scope.VM.MAC)}

	// Before IKE installs anything, the policy's traffic is dropped: its
	// SPs come first and have no SA.
	v := d.Snapshot().VMs[0]
	if len(v.Policies) != 2 || v.PolicySAs[0] != nil || v.PolicySAs[1] != nil || v.Policies[0].Action != tenant.ActionIPsec {
		t.Fatalf("waiting SPs = %+v / %v", v.Policies, v.PolicySAs)
	}
	// SPIs are unique and reserved until installed.
	seen := map[uint32]bool{}
	for range 100 {
		spi, err := d.AllocIKESPI(vmScope)
		must(t, err)
		if seen[spi] || spi < 0x100 {
			t.Fatalf("AllocIKESPI gave %#x twice or reserved", spi)
		}
		seen[spi] = true
	}
	inSPI, err := d.AllocIKESPI(vmScope)
	must(t, err)
	child := func(in, out uint32) IKEChild {
		a, b := gcmSA(t, "", in, sa.ModeTransport), gcmSA(t, "", out, sa.ModeTransport)
		local, remote := netip.MustParseAddr("2001:db8:1::121"), netip.MustParseAddr("2001:db8:2::5")
		a.Src, a.Dst, a.Dir, a.Scope = remote, local, sa.DirIn, vmScope
		b.Src, b.Dst, b.Dir, b.Scope = local, remote, sa.DirOut, vmScope
		return IKEChild{Tenant: "t1", Policy: "pol1", In: a, Out: b, LocalTS: pfx("2001:db8:1::121/128"), RemoteTS: pfx("2001:db8:2::5/128")}
	}
	commits := st.Commits()
	must(t, d.InstallIKEChild(child(inSPI, 0xc2515559)))
	if st.Commits() != commits {
		t.Error("an IKE SA was committed to the store")
	}
	v = d.Snapshot().VMs[0]
	if len(v.Policies) != 4 || v.PolicySAs[0] == nil || v.PolicySAs[0].SPI() != 0xc2515559 || v.PolicySAs[1].SPI() != inSPI ||
		v.Policies[1].Direction != sa.DirIn || v.Policies[0].Dst != netip.MustParsePrefix("2001:db8:2::5/128") || v.PolicySAs[2] != nil {
		t.Fatalf("SPs after install = %+v / %v", v.Policies, v.PolicySAs)
	}
	if len(v.SAs) != 2 {
		t.Errorf("VM lists %d SAs, want 2", len(v.SAs))
	}
	// Listed, managed by IKE.
	sas := d.SAs()
	if len(sas) != 2 || sas[0].IKEPolicy != "pol1" || sas[0].Tenant != "t1" || len(sas[0].UsedBy) != 1 {
		t.Fatalf("SAs = %+v", sas)
	}
	if err := d.RemoveSA(sas[0].Config.Name); CodeOf(err) != CodeInUse || !strings.Contains(err.Error(), "managed by IKE") {
		t.Errorf("RemoveSA of an IKE SA = %v", err)
	}
	_, err = d.AddSA("vm1", seedSA(t, "manual", 0x1000))
	must(t, err)
	removed, _, err := d.RemoveAllSAs()
	must(t, err)
	if !slices.Equal(removed, []string{"manual"}) || d.SADB().Len() != 2 {
		t.Errorf("RemoveAllSAs removed %v, left %d SAs; want only manual removed", removed, d.SADB().Len())
	}
	rows, err := d.IPsecSAs("t1")
	must(t, err)
	if len(rows) != 1 || rows[0].IKEPolicy != "pol1" || rows[0].InboundSPI != inSPI || rows[0].OutboundSPI != 0xc2515559 || rows[0].State != "INSTALLED" {
		t.Errorf("IPsecSAs = %+v", rows)
	}
	// The peer's SPI may not collide in the VM's scope.
	in2, _ := d.AllocIKESPI(vmScope)
	if err := d.InstallIKEChild(child(in2, inSPI)); CodeOf(err) != CodeExists {
		t.Errorf("install with a colliding outbound SPI = %v, want exists", err)
	}
	d.FreeIKESPI(vmScope, in2)
	// A rekeyed child is installed pending: inbound at once, outbound
	// once switched; then it is matched first.
	in3, _ := d.AllocIKESPI(vmScope)
	c3 := child(in3, 0x0badcafe)
	c3.Pending = true
	must(t, d.InstallIKEChild(c3))
	if v := d.Snapshot().VMs[0]; v.PolicySAs[0].SPI() != in3 || v.Policies[0].Direction != sa.DirIn || v.PolicySAs[1].SPI() != 0xc2515559 {
		t.Errorf("pending child: SPs %v", v.PolicySAs)
	}
	must(t, d.SwitchIKEChild(vmScope, in3))
	if v := d.Snapshot().VMs[0]; v.PolicySAs[0].SPI() != 0x0badcafe || v.PolicySAs[2].SPI() != 0xc2515559 {
		t.Errorf("newest child is not matched first after the switch: %v", v.PolicySAs)
	}
	if err := d.SwitchIKEChild(vmScope, 0x0badcafe); CodeOf(err) != CodeInvalid {
		t.Errorf("switch by an outbound SPI = %v, want invalid", err)
	}
	// Selectors the VM's SPD cannot hold are refused.
	in4, _ := d.AllocIKESPI(vmScope)
	c4 := child(in4, 0x44444444)
	c4.Protocol, c4.LocalPorts = ikeconf.ProtoNumTCP, ikeconf.PortRange{First: 1, Last: 1023}
	if err := d.InstallIKEChild(c4); CodeOf(err) != CodeInvalid || !strings.Contains(err.Error(), "--local-ports") {
		t.Errorf("install with a port range = %v", err)
	}
	must(t, d.RemoveIKEChild(vmScope, inSPI))
	must(t, d.RemoveIKEChild(vmScope, inSPI)) // gone: not an error
	if d.SADB().Len() != 2 {
		t.Errorf("%d SAs after removing the old child, want 2", d.SADB().Len())
	}
	// Deleting the policy removes its SAs and SPs.
	must(t, d.DeletePolicy("t1", "pol1"))
	if d.SADB().Len() != 0 || len(d.Snapshot().VMs[0].Policies) != 0 {
		t.Errorf("policy deleted but %d SAs / %d SPs left", d.SADB().Len(), len(d.Snapshot().VMs[0].Policies))
	}
	if err := d.InstallIKEChild(child(in2, 0x12345678)); CodeOf(err) != CodeNotFound {
		t.Errorf("install for a deleted policy = %v, want not found", err)
	}
}

func pemBody(b []byte) []byte {
	s := string(b)
	s = s[strings.Index(s, "\n")+1:]
	s = s[:strings.Index(s, "-----END")]
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, "\n", ""))
	if err != nil {
		panic(err)
	}
	return der
}

func TestIKESPNamesUnique(t *testing.T) {
	d := setup(t, storetest.NewMemory())
	p := pskPolicy("pol1")
	p.Mode, p.RemoteSubnets = sa.ModeTunnel, pfx("2001:db8:2::/64", "2001:db8:3::/64", "2001:db8:2::5/128")
	must2(t)(d.CreatePolicy(p))
	vmScope := sa.Scope{VLAN: 10, MAC: header.MAC{0x52, 0x54, 0, 0, 0, 1}}
	in, err := d.AllocIKESPI(vmScope)
	must(t, err)
	a, b := gcmSA(t, "", in, sa.ModeTunnel), gcmSA(t, "", 0x7000, sa.ModeTunnel)
	a.Src, a.Dst, a.Dir, a.Scope = netip.MustParseAddr("2001:db8:2::5"), netip.MustParseAddr("2001:db8:1::121"), sa.DirIn, vmScope
	b.Src, b.Dst, b.Dir, b.Scope = a.Dst, a.Src, sa.DirOut, vmScope
	must(t, d.InstallIKEChild(IKEChild{Tenant: "t1", Policy: "pol1", In: a, Out: b,
		LocalTS: pfx("2001:db8:1::121/128"), RemoteTS: pfx("2001:db8:2::/64", "2001:db8:3::/64")}))
	v := d.Snapshot().VMs[0]
	seen := map[string]bool{}
	for _, sp := range v.Policies {
		if seen[sp.Name] {
			t.Errorf("SP name %s given twice", sp.Name)
		}
		seen[sp.Name] = true
		if tenant.ValidName(sp.Name) == nil || sp.Action != tenant.ActionIPsec || sp.Mode != sa.ModeTunnel || sp.VM != "vm1" {
			t.Errorf("SP %+v: want an IKE name (never an operator's), action ipsec, tunnel, vm1", sp)
		}
	}
	if len(v.Policies) != 2*2+2*3 {
		t.Errorf("%d SPs, want 4 for the child (1x2 selectors) and 6 waiting (1x3)", len(v.Policies))
	}
	for _, info := range d.SAs() {
		if len(info.UsedBy) != 2 {
			t.Errorf("SA %s used by %v, want two SPs", info.Config.Name, info.UsedBy)
		}
	}
}

func TestIKEFailedCommitChangesNothing(t *testing.T) {
	st := storetest.NewMemory()
	k := newPKI()
	d := setupIKE(t, st, k)
	must2(t)(d.CreatePolicy(pskPolicy("pol1")))
	before, ikeBefore := observe(d), observeIKE(d)
	st.FailCommits(true)
	for name, do := range map[string]func() error{
		"create": func() error { _, err := d.CreatePolicy(pskPolicy("pol2")); return err },
		"modify": func() error {
			_, err := d.ModifyPolicy("t1", "pol1", func(p *ikeconf.Policy) error { p.Mode = sa.ModeTunnel; return nil })
			return err
		},
		"delete": func() error { return d.DeletePolicy("t1", "pol1") },
		"install": func() error {
			_, err := d.InstallCertificate("t1", "x", ikeconf.CertServerCA, k.other.PEM())
			return err
		},
		"ca add":   func() error { return d.RemoveCACertificate("t1", "ca") },
		"crl":      func() error { _, err := d.AddCRL("t1", k.ca.CRL()); return err },
		"cert del": func() error { return d.DeleteCertificate("t1", "ca") },
	} {
		if err := do(); CodeOf(err) != CodeInternal {
			t.Errorf("%s with a failing store: %v, want internal", name, err)
		}
	}
	if after, ikeAfter := observe(d), observeIKE(d); !reflect.DeepEqual(before, after) || !reflect.DeepEqual(ikeBefore, ikeAfter) {
		t.Errorf("state changed by failed commits")
	}
}

// FuzzInstallCertificate feeds arbitrary bytes as the PEM of every
// certificate type and as a CRL: never a panic, and a refusal changes
// nothing.
func FuzzInstallCertificate(f *testing.F) {
	k := newPKI()
	f.Add(k.srv.ServerPEM(k.ca))
	f.Add(k.ca.PEM())
	f.Add(append(k.ca.PEM(), k.other.PEM()...))
	f.Add(k.ca.CRL(k.srv.Cert))
	f.Add(k.srv.ECKeyPEM())
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{})
	st := storetest.NewMemory()
	d, err := New(st, nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := d.AddTenant(tenant.Tenant{Name: "t1"}); err != nil {
		f.Fatal(err)
	}
	if _, err := d.InstallCertificate("t1", "ca", ikeconf.CertClientCA, k.ca.PEM()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range []ikeconf.CertType{ikeconf.CertServer, ikeconf.CertServerCA, ikeconf.CertClientCA} {
			commits := st.Commits()
			_, err := d.InstallCertificate("t1", "fuzz", typ, bytes.Clone(data))
			if err == nil {
				must(t, d.DeleteCertificate("t1", "fuzz"))
			} else if st.Commits() != commits {
				t.Fatalf("a refused install committed: %v", err)
			}
		}
		commits := st.Commits()
		if _, err := d.AddCRL("t1", bytes.Clone(data)); err != nil && st.Commits() != commits {
			t.Fatalf("a refused CRL committed: %v", err)
		}
	})
}
