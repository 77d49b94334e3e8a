package libvirt

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// vfNetdev returns the host netdev that stands for the SR-IOV VF at PCI
// address pci (a hostdev interface): the VF's switchdev representor, which
// stays on the host while the VF itself is in the guest, or else the VF's
// own netdev while a host driver still holds it (at prepare; libvirt binds
// a managed VF to vfio-pci before start).
//
// sysfs layout (Documentation/ABI/testing/sysfs-bus-pci,
// sysfs-class-net): bus/pci/devices/VF/physfn links to the PF;
// PF/virtfnN links to the VF with index N; PF/net/ holds the PF netdev;
// a representor is a netdev whose phys_switch_id equals the PF's and whose
// phys_port_name is pfMvfN (or vfN).
func vfNetdev(sysfs, pci string) (string, error) {
	if sysfs == "" {
		sysfs = "/sys"
	}
	dev := filepath.Join(sysfs, "bus/pci/devices", pci)
	if _, err := os.Stat(dev); err != nil {
		return "", fmt.Errorf("hostdev PCI device %s: not found in %s/bus/pci/devices", pci, sysfs)
	}
	own := firstEntry(filepath.Join(dev, "net"))
	pfLink, err := os.Readlink(filepath.Join(dev, "physfn"))
	if err != nil {
		if own != "" {
			return own, nil
		}
		return "", fmt.Errorf("hostdev PCI device %s is not an SR-IOV VF (no physfn) and has no host netdev; give dev= in <vifsec:interface>", pci)
	}
	pf := filepath.Base(pfLink)
	pfDir := filepath.Join(sysfs, "bus/pci/devices", pf)
	index := -1
	links, _ := filepath.Glob(filepath.Join(pfDir, "virtfn*"))
	for _, l := range links {
		if t, err := os.Readlink(l); err == nil && filepath.Base(t) == pci {
			fmt.Sscanf(filepath.Base(l), "virtfn%d", &index)
			break
		}
	}
	pfNet := firstEntry(filepath.Join(pfDir, "net"))
	if index >= 0 && pfNet != "" {
		if rep := representor(sysfs, pfNet, index); rep != "" {
			return rep, nil
		}
	}
	if own != "" {
		return own, nil
	}
	hint := ""
	if pfNet != "" {
		hint = fmt.Sprintf(" (devlink dev eswitch set pci/%s mode switchdev)", pf)
	}
	return "", fmt.Errorf("hostdev VF %s (VF %d of PF %s %s): no switchdev representor found and the VF has no host netdev (vfio holds it); put the PF in switchdev mode%s or give dev= in <vifsec:interface>", pci, index, pf, pfNet, hint)
}

var portNameRe = regexp.MustCompile(`^(?:pf(\d+))?vf(\d+)$`)

// representor finds the representor netdev of VF index on PF netdev pf.
func representor(sysfs, pf string, index int) string {
	class := filepath.Join(sysfs, "class/net")
	sw := readTrim(filepath.Join(class, pf, "phys_switch_id"))
	if sw == "" {
		return ""
	}
	// The PF's own port name (p0, p1) tells which pfM its representors use.
	pfNum := ""
	if pn := readTrim(filepath.Join(class, pf, "phys_port_name")); strings.HasPrefix(pn, "p") {
		pfNum = pn[1:]
	}
	ents, err := os.ReadDir(class)
	if err != nil {
		return ""
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	want := fmt.Sprint(index)
	for _, n := range names {
		if n == pf || readTrim(filepath.Join(class, n, "phys_switch_id")) != sw {
			continue
		}
		m := portNameRe.FindStringSubmatch(readTrim(filepath.Join(class, n, "phys_port_name")))
		if m == nil || m[2] != want {
			continue
		}
		if m[1] != "" && pfNum != "" && m[1] != pfNum {
			continue
		}
		return n
	}
	return ""
}

func firstEntry(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return ""
	}
	return ents[0].Name()
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
