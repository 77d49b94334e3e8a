package libvirtexample

import (
	"bytes"
	"os"
	"testing"

	"github.com/vifsec/vifsec/internal/libvirt"
)

// TestDomainXML: the example domain parses, asks for fail closed, and its
// interface becomes VM web1 of tenant acme on VLAN 100 with two addresses,
// on the device libvirt gives it when it starts.
func TestDomainXML(t *testing.T) {
	b, err := os.ReadFile("domain.xml")
	if err != nil {
		t.Fatal(err)
	}
	// libvirt adds a UUID when it defines the domain and, when it starts
	// it, the interface's target dev.
	b = bytes.Replace(b, []byte("<name>web1</name>"), []byte("<name>web1</name><uuid>3c1f8a52-8e1b-4bb4-9a1e-6a0d5f4c2b10</uuid>"), 1)
	b = bytes.Replace(b, []byte("<model type='virtio'/>"), []byte("<target dev='vnet0'/><model type='virtio'/>"), 1)
	d, err := libvirt.ParseDomain(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Meta == nil || d.Meta.Fail != libvirt.FailClosed || d.Name != "web1" {
		t.Fatalf("domain %+v", d)
	}
	bs, err := d.Plan(&libvirt.PlanOptions{NeedDev: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 {
		t.Fatalf("bindings %+v", bs)
	}
	v := bs[0].VM
	if v.Name != "web1" || v.Tenant != "acme" || v.Dev != "vnet0" || v.VLAN != 100 || len(v.IPs) != 2 ||
		v.MAC.String() != "52:54:00:12:34:56" || v.Origin != "libvirt:3c1f8a52-8e1b-4bb4-9a1e-6a0d5f4c2b10" {
		t.Fatalf("VM %+v", v)
	}
}
