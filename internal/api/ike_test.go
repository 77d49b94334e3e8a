package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	wire "github.com/vifsec/vifsec/api"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/pkitest"
)

const apiPSK = "0x000102030405060708090a0b0c0d0e0f1011"

func TestListUnmarshal(t *testing.T) {
	for in, want := range map[string]List{
		`"a,b"`:         {"a", "b"},
		`" a , b "`:     {"a", "b"},
		`["a"," b"]`:    {"a", "b"},
		`""`:            {},
		`null`:          nil,
		`"2001:db8::1"`: {"2001:db8::1"},
	} {
		var l List
		if err := json.Unmarshal([]byte(in), &l); err != nil || !reflect.DeepEqual(l, want) {
			t.Errorf("%s: %#v, %v; want %#v", in, l, err, want)
		}
	}
	var l List
	if err := json.Unmarshal([]byte(`3`), &l); err == nil {
		t.Error("a number was accepted as a list")
	}
}

func TestAPIPolicies(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	must := func(_ Added, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1"}))
	must(c.AttachVM(ctx, wire.VMAttachRequest{VM: "vm1", Tenant: "t1", Dev: "tap0", MAC: "52:54:00:ab:cd:ef", IP: []string{"2001:db8:1::121"}}))
	must(c.CreatePolicy(ctx, wire.PolicyCreateRequest{Tenant: "t1", Name: "pol1", VM: "vm1",
		LocalIPSubnets: List{"2001:DB8:1::121"}, RemoteIPSubnets: List{"2001:db8:2::/64", "2001:db8:3::/64"},
		Protocols: "tcp", LocalPorts: "2049", RemoteAddress: "2001:db8:2::5", PSK: apiPSK,
		IKEProposals: List{"AES256GCM16-PRFSHA384-ECP384"}}))
	ps, err := c.Policies(ctx, "t1")
	if err != nil || len(ps) != 1 {
		t.Fatalf("Policies = %+v, %v", ps, err)
	}
	want := Policy{Tenant: "t1", Name: "pol1", VM: "vm1", LocalIPSubnets: []string{"2001:db8:1::121/128"},
		RemoteIPSubnets: []string{"2001:db8:2::/64", "2001:db8:3::/64"}, Protocols: "tcp", LocalPorts: "2049", RemotePorts: "any",
		RemoteAddress: "2001:db8:2::5", Mode: "transport", AuthMethod: "PSK", PSK: "set",
		IKEProposals: []string{"aes256gcm16-prfsha384-ecp384"}, ESPProposals: []string{}, LocalAddress: "2001:db8:1::121",
		IKELifetime: "4h", ESPLifetime: "1h", DPDInterval: "off", DPDAction: "restart", Encapsulation: "auto"}
	if !reflect.DeepEqual(ps[0], want) {
		t.Errorf("policy listed as\n%+v\nwant\n%+v", ps[0], want)
	}
	// Nothing listed carries the key.
	var raw json.RawMessage
	if err := c.Do(ctx, http.MethodGet, "/v2/policies", nil, &raw); err != nil || strings.Contains(string(raw), "0e0f") || strings.Contains(string(raw), "AAECAw") {
		t.Errorf("listing holds the PSK: %s", raw)
	}
	// Modify: absent fields keep their value, "" resets an optional one.
	empty := ""
	tunnel := "tunnel"
	must(c.ModifyPolicy(ctx, "t1", "pol1", wire.PolicyModifyRequest{Mode: &tunnel, RemoteAddress: &empty}))
	ps, _ = c.Policies(ctx, "")
	if ps[0].Mode != "tunnel" || ps[0].RemoteAddress != "" || ps[0].Protocols != "tcp" || ps[0].PSK != "set" {
		t.Errorf("after modify: %+v", ps[0])
	}
	// --encapsulation udp (strongSwan's encap=yes) is kept; "" resets it.
	udp := "udp"
	must(c.ModifyPolicy(ctx, "t1", "pol1", wire.PolicyModifyRequest{Encapsulation: &udp}))
	if ps, _ = c.Policies(ctx, ""); ps[0].Encapsulation != "udp" {
		t.Errorf("after --encapsulation udp: %q", ps[0].Encapsulation)
	}
	must(c.ModifyPolicy(ctx, "t1", "pol1", wire.PolicyModifyRequest{Encapsulation: &empty}))
	if ps, _ = c.Policies(ctx, ""); ps[0].Encapsulation != "auto" {
		t.Errorf("after --encapsulation '': %q", ps[0].Encapsulation)
	}
	var ae *Error
	bad := "esp-in-udp"
	_, err = c.ModifyPolicy(ctx, "t1", "pol1", wire.PolicyModifyRequest{Encapsulation: &bad})
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "--encapsulation") || !strings.Contains(ae.Message, "auto") {
		t.Errorf("--encapsulation esp-in-udp: %v", err)
	}
	anything := "ANYTHING"
	_, err = c.ModifyPolicy(ctx, "t1", "pol1", wire.PolicyModifyRequest{RemoteIdentity: &anything})
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "--remote-identity") {
		t.Errorf("ANYTHING with PSK: %v", err)
	}
	_, err = c.CreatePolicy(ctx, wire.PolicyCreateRequest{Tenant: "t1", Name: "pol2", LocalIPSubnets: List{"2001:db8:1::/64"},
		RemoteIPSubnets: List{"2001:db8:2::/64"}, LocalPorts: "1-2-3", Protocols: "frob", PSK: "\x01bad"})
	if !errors.As(err, &ae) || ae.Code != "invalid" {
		t.Fatalf("bad create: %v", err)
	}
	for _, flag := range []string{"--local-ports", "--protocols", "pre-shared key"} {
		if !strings.Contains(ae.Message, flag) {
			t.Errorf("message %q does not name %s", ae.Message, flag)
		}
	}
	if strings.Contains(ae.Message, "\x01bad") {
		t.Errorf("the refused PSK is quoted in %q", ae.Message)
	}
	_, err = c.ModifyPolicy(ctx, "t1", "nosuch", wire.PolicyModifyRequest{})
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("modify unknown: %v", err)
	}
	// Unknown fields are refused.
	err = c.Do(ctx, http.MethodPatch, "/v2/policies/t1/pol1", map[string]string{"moed": "tunnel"}, nil)
	if !errors.As(err, &ae) || ae.Code != "bad_request" {
		t.Errorf("unknown field: %v", err)
	}
	r, err := c.DeletePolicy(ctx, "t1", "pol1")
	if err != nil || !reflect.DeepEqual(r.Removed, []string{"t1/pol1"}) {
		t.Errorf("DeletePolicy = %+v, %v", r, err)
	}
	if ikesas, err := c.IKESAs(ctx, ""); err != nil || ikesas == nil || len(ikesas) != 0 {
		t.Errorf("IKESAs without an engine = %#v, %v; want []", ikesas, err)
	}
	if _, err := c.IKESAs(ctx, "nosuch"); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("IKESAs(nosuch): %v", err)
	}
}

func TestAPICertificates(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	if _, err := c.AddTenant(ctx, wire.TenantAddRequest{Tenant: "t1"}); err != nil {
		t.Fatal(err)
	}
	ca := pkitest.NewCA("test CA")
	srv := ca.Issue("gw.example.com")
	if _, err := c.InstallCertificate(ctx, wire.CertificateInstallRequest{Tenant: "t1", CertName: "srv", Type: "server", PEM: string(srv.ServerPEM(ca))}); err != nil {
		t.Fatal(err)
	}
	a, err := c.InstallCertificate(ctx, wire.CertificateInstallRequest{Tenant: "t1", CertName: "ca", Type: "client-ca", PEM: string(ca.PEM())})
	if err != nil || len(a.Warnings) != 1 {
		t.Fatalf("install CA: %+v, %v", a, err)
	}
	var ae *Error
	_, err = c.InstallCertificate(ctx, wire.CertificateInstallRequest{Tenant: "t1", CertName: "x", Type: "root", PEM: "x"})
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, "--type") {
		t.Errorf("bad type: %v", err)
	}
	if _, err := c.AddCACertificates(ctx, CACertificatesAddRequest{Tenant: "t1", CACerts: List{"ca"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddCACertificates(ctx, CACertificatesAddRequest{Tenant: "t1", CACerts: List{"srv"}}); !errors.As(err, &ae) || !strings.Contains(ae.Message, "--ca-certs") {
		t.Errorf("server cert as CA: %v", err)
	}
	if _, err := c.AddCRL(ctx, CRLAddRequest{Tenant: "t1", PEM: string(ca.CRL(srv.Cert))}); err != nil {
		t.Fatal(err)
	}
	certs, err := c.Certificates(ctx, "t1")
	if err != nil || len(certs) != 2 {
		t.Fatalf("Certificates = %+v, %v", certs, err)
	}
	if s := certs[1]; s.CertName != "srv" || s.PrivateKey != "set" || s.Subject != "CN=gw.example.com,O=vifsec test" || s.Count != 2 || s.IPsecCA {
		t.Errorf("srv listed as %+v", s)
	}
	var raw json.RawMessage
	if err := c.Do(ctx, http.MethodGet, "/v2/certificates", nil, &raw); err != nil || strings.Contains(string(raw), "PRIVATE") || strings.Contains(string(raw), "MIG") {
		t.Errorf("listing holds key material: %s", raw)
	}
	cas, err := c.CACertificates(ctx, "")
	if err != nil || len(cas) != 1 || cas[0].CertName != "ca" {
		t.Errorf("CACertificates = %+v, %v", cas, err)
	}
	crls, err := c.CRLs(ctx, "t1")
	if err != nil || len(crls) != 1 || crls[0].CACert != "ca" || crls[0].Revoked != 1 || crls[0].Number != "1" {
		t.Errorf("CRLs = %+v, %v", crls, err)
	}
	if _, err := c.RemoveCACertificate(ctx, "t1", "ca"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.DeleteCertificate(ctx, "t1", "ca"); err != nil || r.Removed[0] != "t1/ca" {
		t.Errorf("DeleteCertificate = %+v, %v", r, err)
	}
	if crls, _ := c.CRLs(ctx, ""); len(crls) != 0 {
		t.Errorf("CRL of a deleted CA still listed")
	}
}

// FuzzPolicyRequest decodes arbitrary JSON as policy create and modify
// requests and parses them: never a panic, and the PSK never appears in
// an error.
func FuzzPolicyRequest(f *testing.F) {
	f.Add([]byte(`{"tenant":"t1","name":"p","local_ip_subnets":"2001:db8:1::121","remote_ip_subnets":["2001:db8:2::/64"],"protocols":"tcp","local_ports":2049,"psk":"0x0102"}`))
	f.Add([]byte(`{"tenant":"t1","name":"p","local_ip_subnets":"192.0.2.1/32,192.0.2.0/24","remote_ip_subnets":"","auth_method":"pki","cert_name":"c","remote_identity":"ANYTHING","ike_proposals":"aes256gcm16-prfsha384-ecp384"}`))
	f.Add([]byte(`{"mode":"tunnel","remote_address":"","local_ports":"1-2","psk":"secret-in-fuzz"}`))
	f.Add([]byte(`{"local_ip_subnets":null,"esp_proposals":["AES128GCM16",""]}`))
	f.Add([]byte(`{"ike_lifetime":"20m","esp_lifetime":600,"dpd_interval":"off","dpd_action":"clear"}`))
	f.Add([]byte(`{"ike_lifetime":"-1h","esp_lifetime":"1e9h","dpd_interval":true,"dpd_action":"RESTART"}`))
	// leaks reports an error that quotes psk, when psk is long enough to
	// tell and appears in the body only as the key (a mode "0000" and a
	// key "0000" would be quoted for the mode).
	leaks := func(err error, body []byte, psk string) bool {
		return err != nil && len(psk) >= 6 && bytes.Count(body, []byte(psk)) == 1 && strings.Contains(err.Error(), psk)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var c PolicyCreateRequest
		if json.Unmarshal(body, &c) == nil {
			if _, err := c.Parse(); leaks(err, body, c.PSK) {
				t.Fatalf("error quotes the PSK: %v", err)
			}
		}
		var m PolicyModifyRequest
		if json.Unmarshal(body, &m) == nil {
			p, err := (&PolicyCreateRequest{Tenant: "t1", Name: "p", LocalIPSubnets: List{"2001:db8:1::1"}, RemoteIPSubnets: List{"2001:db8:2::/64"}, PSK: "k"}).Parse()
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Edit()(&p); m.PSK != nil && leaks(err, body, *m.PSK) {
				t.Fatalf("error quotes the PSK: %v", err)
			}
		}
	})
}
