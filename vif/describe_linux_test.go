package vif

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParsePortName(t *testing.T) {
	tests := []struct {
		name, port string
		want       *RepresentorInfo
	}{
		{name: "vf", port: "pf0vf3", want: &RepresentorInfo{PortName: "pf0vf3", Controller: -1, PF: 0, VF: 3, SF: -1}},
		{name: "controller-vf", port: "c1pf1vf12", want: &RepresentorInfo{PortName: "c1pf1vf12", Controller: 1, PF: 1, VF: 12, SF: -1}},
		{name: "sf", port: "pf0sf88", want: &RepresentorInfo{PortName: "pf0sf88", Controller: -1, PF: 0, VF: -1, SF: 88}},
		{name: "host-pf", port: "pf1", want: &RepresentorInfo{PortName: "pf1", Controller: -1, PF: 1, VF: -1, SF: -1}},
		{name: "uplink", port: "p0"},
		{name: "split-port", port: "p1s0"},
		{name: "empty", port: ""},
		{name: "garbage", port: "pf0vf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parsePortName(tc.port)
			if ok != (tc.want != nil) || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parsePortName(%q) = %+v, %t; want %+v", tc.port, got, ok, tc.want)
			}
		})
	}
}

// fakeSysfs lays out what sysfs shows for a PF 0000:03:00.0 (netdev
// enp3s0f0) with VFs 0000:03:00.2 (virtfn0) and 0000:03:00.3 (virtfn1,
// netdev enp3s0f0v1 in this namespace).
func fakeSysfs(t *testing.T) string {
	root := t.TempDir()
	pci := filepath.Join(root, "devices/pci0000:00/0000:00:02.0")
	mk := func(dir string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, link string) {
		mk(filepath.Dir(link))
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	mk(filepath.Join(root, "bus/pci/devices"))
	mk(filepath.Join(pci, "0000:03:00.0/net/enp3s0f0"))
	mk(filepath.Join(pci, "0000:03:00.3/net/enp3s0f0v1"))
	mk(filepath.Join(pci, "0000:03:00.2"))
	mk(filepath.Join(root, "bus/pci"))
	for _, d := range []string{"0000:03:00.0", "0000:03:00.2", "0000:03:00.3"} {
		ln("../../../devices/pci0000:00/0000:00:02.0/"+d, filepath.Join(root, "bus/pci/devices", d))
		ln("../../../../bus/pci", filepath.Join(pci, d, "subsystem"))
	}
	ln("../0000:03:00.2", filepath.Join(pci, "0000:03:00.0/virtfn0"))
	ln("../0000:03:00.3", filepath.Join(pci, "0000:03:00.0/virtfn1"))
	ln("../0000:03:00.0", filepath.Join(pci, "0000:03:00.2/physfn"))
	ln("../0000:03:00.0", filepath.Join(pci, "0000:03:00.3/physfn"))
	ln("../../devices/pci0000:00/0000:00:02.0/0000:03:00.3/net/enp3s0f0v1", filepath.Join(root, "class/net/enp3s0f0v1"))
	ln("../../devices/pci0000:00/0000:00:02.0/0000:03:00.0/net/enp3s0f0", filepath.Join(root, "class/net/enp3s0f0"))
	ln("../../../0000:03:00.3", filepath.Join(pci, "0000:03:00.3/net/enp3s0f0v1/device"))
	ln("../../../0000:03:00.0", filepath.Join(pci, "0000:03:00.0/net/enp3s0f0/device"))
	return root
}

func TestSRIOVFromSysfs(t *testing.T) {
	root := fakeSysfs(t)
	tests := []struct {
		name, pci string
		want      *VFInfo
	}{
		{name: "vf0", pci: "0000:03:00.2", want: &VFInfo{PCI: "0000:03:00.2", PFPCI: "0000:03:00.0", PF: "enp3s0f0", Index: 0}},
		{name: "vf1", pci: "0000:03:00.3", want: &VFInfo{PCI: "0000:03:00.3", PFPCI: "0000:03:00.0", PF: "enp3s0f0", Index: 1}},
		{name: "pf", pci: "0000:03:00.0"},
		{name: "absent", pci: "0000:09:00.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := sriovVF(root, tc.pci)
			if ok != (tc.want != nil) || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("sriovVF(%s) = %+v, %t; want %+v", tc.pci, got, ok, tc.want)
			}
		})
	}
	// The fallback for kernels without IFLA_PARENT_DEV_NAME.
	if got := pciOfNetdev(root, "enp3s0f0v1"); got != "0000:03:00.3" {
		t.Errorf("pciOfNetdev(enp3s0f0v1) = %q, want 0000:03:00.3", got)
	}
	if got := pciOfNetdev(root, "veth0"); got != "" {
		t.Errorf("pciOfNetdev(veth0) = %q, want \"\"", got)
	}
	// The PF in another namespace than sysfs's: no netdev name, PCI known.
	if err := os.RemoveAll(filepath.Join(root, "devices/pci0000:00/0000:00:02.0/0000:03:00.0/net")); err != nil {
		t.Fatal(err)
	}
	if got, _ := sriovVF(root, "0000:03:00.2"); got == nil || got.PF != "" || got.PFPCI != "0000:03:00.0" {
		t.Errorf("PF elsewhere: %+v, want PF \"\" and PFPCI 0000:03:00.0", got)
	}
}
