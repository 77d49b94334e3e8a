package libvirt

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vifsec/vifsec/tenant"
)

// Namespace is the XML namespace of vifsec's metadata element, which a
// domain carries in its <metadata> (libvirt keeps one element per
// namespace, whatever its prefix):
//
//	<metadata>
//	  <vifsec:vm xmlns:vifsec="https://vifsec.dev/xmlns/libvirt/1"
//	             tenant="acme" [policy="web"] [fail="open|closed"]>
//	    <vifsec:interface mac="52:54:00:12:34:56" [name="web1"] [tenant="acme"]
//	                      [vlan="100"] [dev="vnet7"] [ip="2001:db8:1::121 192.0.2.1"]
//	                      [protect="yes|no"]/>
//	  </vifsec:vm>
//	</metadata>
//
// <vifsec:interface> elements are optional; they set, for the domain
// interface with that MAC, what the <vifsec:vm> element does not say or
// says for every interface.
const Namespace = "https://vifsec.dev/xmlns/libvirt/1"

// MaxDomainXML bounds the domain XML vifsec reads: libvirt's own bound on a
// string in its RPC protocol (VIR_NET_MESSAGE_STRING_MAX, 4 MiB).
const MaxDomainXML = 4 << 20

// FailMode is what a domain's start does when vifsec cannot protect it.
type FailMode uint8

const (
	FailInvalid FailMode = iota
	// FailOpen (the default) logs and lets the domain start.
	FailOpen
	// FailClosed makes the hook refuse the start, so the domain never
	// runs unprotected.
	FailClosed
)

func (m FailMode) String() string {
	switch m {
	case FailOpen:
		return "open"
	case FailClosed:
		return "closed"
	}
	return "invalid"
}

// Domain is what vifsec reads from a libvirt domain XML.
type Domain struct {
	Name string
	// UUID is the domain's UUID in lower case, 8-4-4-4-12 hex digits.
	UUID       string
	Interfaces []Interface
	// Meta is vifsec's metadata; nil if the domain has none (vifsec then
	// leaves it alone).
	Meta *Meta
}

// Interface is one <interface> of the domain.
type Interface struct {
	// Index is the interface's position among the domain's interfaces,
	// from 0.
	Index int
	// Type is the type attribute: ethernet, bridge, network, direct,
	// hostdev, user, vhostuser, ...
	Type string
	MAC  tenant.MAC
	// MACText is the <mac address> as written ("" if missing).
	MACText string
	// Target is <target dev>: the host-side device (vnetN, macvtapN, or
	// a name the domain gives); libvirt fills it in when the domain starts.
	Target string
	// SourceDev, Bridge and Network are <source dev>, <source bridge>
	// and <source network>; Mode is <source mode> (direct).
	SourceDev, Bridge, Network, Mode string
	// PCI is the hostdev VF's PCI address as sysfs writes it
	// (0000:03:10.2), from <source><address type='pci' .../>.
	PCI string
	// Tags are the <vlan><tag id> elements; Trunk is <vlan trunk='yes'>.
	Tags  []VLANTag
	Trunk bool
}

// VLANTag is one <vlan><tag id='N' [nativeMode='tagged|untagged']/>.
type VLANTag struct {
	ID     uint16
	Native string
}

// Meta is vifsec's <vifsec:vm> element.
type Meta struct {
	// Tenant is the tenant of every interface that does not name its own.
	Tenant string
	// Policy names the IKE policy that must speak for one of the
	// domain's VMs: the hook checks it at prepare (cmd/vifsec-hook).
	Policy string
	Fail   FailMode
	// Interfaces are the per-interface settings, by MAC.
	Interfaces []MetaInterface
}

// MetaInterface is one <vifsec:interface> element.
type MetaInterface struct {
	MAC tenant.MAC
	// Name is the vifsec VM name for the interface ("" means the
	// default, DefaultVMName).
	Name string
	// Tenant overrides Meta.Tenant for this interface.
	Tenant string
	// Dev names the host device, for interfaces where the XML cannot say
	// (a hostdev VF without a switchdev representor found in sysfs).
	Dev string
	// VLAN is the vifsec VLAN of the interface, -1 if not set: the
	// interface's own <vlan> tag is used then.
	VLAN int
	// IPs are the addresses the VM may source (anti-spoofing); none
	// means any.
	IPs []netip.Addr
	// Protect false leaves the interface alone (protect="no").
	Protect bool
}

// Raw XML shapes. Attributes are read as text and checked afterwards, so
// an error names the attribute and what it accepts.

type xmlDomain struct {
	XMLName    xml.Name       `xml:"domain"`
	Name       string         `xml:"name"`
	UUID       string         `xml:"uuid"`
	Metadata   *xmlMetadata   `xml:"metadata"`
	Interfaces []xmlInterface `xml:"devices>interface"`
}

type xmlMetadata struct {
	VMs []xmlMetaVM `xml:"https://vifsec.dev/xmlns/libvirt/1 vm"`
}

// xmlMetaVM is <vifsec:vm>. Its <interface> children may be in vifsec's
// namespace (as libvirt writes them, `virsh metadata --key vifsec --set`
// included) or in none (as a hand-written XML may).
type xmlMetaVM struct {
	Attrs      []xml.Attr     `xml:",any,attr"`
	Interfaces []xmlMetaIface `xml:"interface"`
	Other      []xmlAny       `xml:",any"`
}

type xmlMetaIface struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Other   []xmlAny   `xml:",any"`
}

type xmlAny struct {
	XMLName xml.Name
}

type xmlInterface struct {
	Type string `xml:"type,attr"`
	MAC  struct {
		Address string `xml:"address,attr"`
	} `xml:"mac"`
	Target struct {
		Dev string `xml:"dev,attr"`
	} `xml:"target"`
	Source struct {
		Dev     string `xml:"dev,attr"`
		Bridge  string `xml:"bridge,attr"`
		Network string `xml:"network,attr"`
		Mode    string `xml:"mode,attr"`
		Address *struct {
			Type     string `xml:"type,attr"`
			Domain   string `xml:"domain,attr"`
			Bus      string `xml:"bus,attr"`
			Slot     string `xml:"slot,attr"`
			Function string `xml:"function,attr"`
		} `xml:"address"`
	} `xml:"source"`
	VLAN *struct {
		Trunk string `xml:"trunk,attr"`
		Tags  []struct {
			ID         string `xml:"id,attr"`
			NativeMode string `xml:"nativeMode,attr"`
		} `xml:"tag"`
	} `xml:"vlan"`
}

// HasMetadata reports whether b mentions vifsec's namespace at all: a
// domain XML that does not cannot carry vifsec metadata, and the hook
// leaves it alone without parsing it.
func HasMetadata(b []byte) bool { return bytes.Contains(b, []byte(Namespace)) }

// ParseDomain reads a domain XML. A domain without vifsec metadata is
// read leniently (Meta nil; interfaces it cannot read are left out); with
// metadata, every problem of the metadata and of the interfaces is
// returned (joined), each naming the element and attribute at fault and
// what it accepts. On error the returned Domain may still be non-nil and
// carry what was read, Meta.Fail included.
func ParseDomain(b []byte) (*Domain, error) {
	if len(b) > MaxDomainXML {
		return nil, fmt.Errorf("domain XML is %d bytes; vifsec reads at most %d", len(b), MaxDomainXML)
	}
	var x xmlDomain
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("domain XML: %w", err)
	}
	d := &Domain{Name: strings.TrimSpace(x.Name), UUID: strings.ToLower(strings.TrimSpace(x.UUID))}
	var errs []error
	for i := range x.Interfaces {
		ifc, err := readInterface(i, &x.Interfaces[i])
		if err != nil {
			errs = append(errs, err)
		}
		d.Interfaces = append(d.Interfaces, ifc)
	}
	if x.Metadata == nil || len(x.Metadata.VMs) == 0 {
		return d, nil
	}
	if len(x.Metadata.VMs) > 1 {
		errs = append(errs, fmt.Errorf("<metadata> has %d <vifsec:vm> elements; give one (libvirt keeps one element per namespace)", len(x.Metadata.VMs)))
	}
	m, merrs := readMeta(&x.Metadata.VMs[0])
	d.Meta = m
	errs = append(errs, merrs...)
	if d.Name == "" {
		errs = append(errs, errors.New("domain has no <name>"))
	}
	if !validUUID(d.UUID) {
		errs = append(errs, fmt.Errorf("domain <uuid> %q is not a UUID; vifsec marks the VMs it attaches with it", x.UUID))
	}
	macs := map[tenant.MAC]bool{}
	for _, ifc := range d.Interfaces {
		if ifc.MACText != "" {
			macs[ifc.MAC] = true
		}
	}
	for i := range m.Interfaces {
		mi := &m.Interfaces[i]
		if mi.MAC == (tenant.MAC{}) {
			continue // already reported
		}
		if !macs[mi.MAC] {
			errs = append(errs, fmt.Errorf("<vifsec:interface mac=%q>: the domain has no <interface> with this MAC; fix the MAC or remove the element", mi.MAC))
		}
	}
	if len(errs) > 0 {
		return d, errors.Join(errs...)
	}
	return d, nil
}

// metaByMAC returns the <vifsec:interface> elements by MAC.
func (m *Meta) metaByMAC() map[tenant.MAC]*MetaInterface {
	out := make(map[tenant.MAC]*MetaInterface, len(m.Interfaces))
	for i := range m.Interfaces {
		out[m.Interfaces[i].MAC] = &m.Interfaces[i]
	}
	return out
}

func readInterface(i int, x *xmlInterface) (Interface, error) {
	ifc := Interface{
		Index: i, Type: x.Type, MACText: x.MAC.Address, Target: x.Target.Dev,
		SourceDev: x.Source.Dev, Bridge: x.Source.Bridge, Network: x.Source.Network, Mode: x.Source.Mode,
	}
	var errs []error
	where := fmt.Sprintf("interface %d (type %q)", i, x.Type)
	if x.MAC.Address != "" {
		m, err := tenant.ParseMAC(x.MAC.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: <mac address=%q>: %w", where, x.MAC.Address, err))
		}
		ifc.MAC = m
	}
	if a := x.Source.Address; a != nil && (a.Type == "pci" || a.Type == "") {
		pci, err := pciAddress(a.Domain, a.Bus, a.Slot, a.Function)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: <source><address type='pci'>: %w", where, err))
		}
		ifc.PCI = pci
	}
	if v := x.VLAN; v != nil {
		ifc.Trunk = v.Trunk == "yes"
		for _, t := range v.Tags {
			n, err := strconv.ParseUint(strings.TrimSpace(t.ID), 10, 16)
			if err != nil || n > tenant.MaxVLAN {
				errs = append(errs, fmt.Errorf("%s: <vlan><tag id=%q>: not a VLAN ID; libvirt accepts 0-4095 and vifsec 0-4094", where, t.ID))
				continue
			}
			ifc.Tags = append(ifc.Tags, VLANTag{ID: uint16(n), Native: t.NativeMode})
		}
	}
	return ifc, errors.Join(errs...)
}

// pciAddress formats a libvirt PCI address (attributes in hex with 0x, or
// decimal) as sysfs names the device: DDDD:BB:SS.F.
func pciAddress(domain, bus, slot, function string) (string, error) {
	parts := []struct {
		name, text string
		max        uint64
	}{{"domain", domain, 0xffff}, {"bus", bus, 0xff}, {"slot", slot, 0x1f}, {"function", function, 7}}
	var v [4]uint64
	for i, p := range parts {
		if p.text == "" && p.name == "domain" {
			continue // domain 0 when not given
		}
		n, err := strconv.ParseUint(p.text, 0, 32)
		if err != nil || n > p.max {
			return "", fmt.Errorf("%s=%q is not a PCI %s; use 0x0-%#x", p.name, p.text, p.name, p.max)
		}
		v[i] = n
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", v[0], v[1], v[2], v[3]), nil
}

// readMeta checks the <vifsec:vm> element. The returned Meta is never nil;
// its Fail is FailClosed when the fail attribute is not understood, the
// safe reading of a typo such as fail="close".
func readMeta(x *xmlMetaVM) (*Meta, []error) {
	m := &Meta{Fail: FailOpen}
	var errs []error
	for _, a := range attrs(x.Attrs) {
		switch a.Name.Local {
		case "tenant":
			m.Tenant = a.Value
			if err := tenant.ValidName(a.Value); err != nil {
				errs = append(errs, fmt.Errorf("<vifsec:vm tenant=%q>: %w", a.Value, err))
			}
		case "policy":
			m.Policy = a.Value
			if err := tenant.ValidName(a.Value); err != nil {
				errs = append(errs, fmt.Errorf("<vifsec:vm policy=%q>: %w", a.Value, err))
			}
		case "fail":
			switch a.Value {
			case "open":
				m.Fail = FailOpen
			case "closed":
				m.Fail = FailClosed
			default:
				m.Fail = FailClosed
				errs = append(errs, fmt.Errorf("<vifsec:vm fail=%q>: not a fail mode; use open (start the domain unprotected, the default) or closed (refuse to start it)", a.Value))
			}
		default:
			errs = append(errs, fmt.Errorf("<vifsec:vm>: unknown attribute %s=%q; it takes tenant, policy and fail", a.Name.Local, a.Value))
		}
	}
	for _, o := range x.Other {
		errs = append(errs, fmt.Errorf("<vifsec:vm>: unknown element <%s>; it holds only <vifsec:interface> elements", o.XMLName.Local))
	}
	for _, mi := range x.Interfaces {
		if sp := mi.XMLName.Space; sp != Namespace && sp != "" {
			errs = append(errs, fmt.Errorf("<vifsec:vm>: <interface> in namespace %q; write it in vifsec's (%s), or in none", sp, Namespace))
		}
	}
	seen := map[tenant.MAC]bool{}
	for i := range x.Interfaces {
		mi, ierrs := readMetaIface(&x.Interfaces[i])
		errs = append(errs, ierrs...)
		if mi.MAC != (tenant.MAC{}) {
			if seen[mi.MAC] {
				errs = append(errs, fmt.Errorf("<vifsec:interface mac=%q> is given twice; give one element per interface", mi.MAC))
				continue
			}
			seen[mi.MAC] = true
		}
		m.Interfaces = append(m.Interfaces, mi)
	}
	return m, errs
}

func readMetaIface(x *xmlMetaIface) (MetaInterface, []error) {
	mi := MetaInterface{VLAN: -1, Protect: true}
	var errs []error
	el := "<vifsec:interface>"
	for _, a := range attrs(x.Attrs) {
		if a.Name.Local == "mac" {
			el = fmt.Sprintf("<vifsec:interface mac=%q>", a.Value)
		}
	}
	hasMAC := false
	for _, a := range attrs(x.Attrs) {
		bad := func(err error) { errs = append(errs, fmt.Errorf("%s %s=%q: %w", el, a.Name.Local, a.Value, err)) }
		switch a.Name.Local {
		case "mac":
			hasMAC = true
			m, err := tenant.ParseMAC(a.Value)
			if err != nil {
				bad(err)
			}
			mi.MAC = m
		case "name":
			mi.Name = a.Value
			if err := tenant.ValidName(a.Value); err != nil {
				bad(err)
			}
		case "tenant":
			mi.Tenant = a.Value
			if err := tenant.ValidName(a.Value); err != nil {
				bad(err)
			}
		case "dev":
			mi.Dev = a.Value
			if a.Value == "" || len(a.Value) > 15 || strings.ContainsAny(a.Value, "/: \t\n\x00") {
				bad(errors.New("not an interface name; use 1-15 characters without '/', ':' or spaces"))
			}
		case "vlan":
			n, err := tenant.ParseVLAN(a.Value)
			if err != nil {
				bad(err)
			}
			mi.VLAN = int(n)
		case "ip":
			for _, s := range strings.Fields(a.Value) {
				ip, err := tenant.ParseAddr(s)
				if err != nil {
					bad(err)
					continue
				}
				mi.IPs = append(mi.IPs, ip)
			}
		case "protect":
			switch a.Value {
			case "yes", "true":
				mi.Protect = true
			case "no", "false":
				mi.Protect = false
			default:
				bad(errors.New("use yes (the default) or no (leave this interface alone)"))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: unknown attribute %s=%q; it takes mac, name, tenant, vlan, dev, ip and protect", el, a.Name.Local, a.Value))
		}
	}
	if !hasMAC {
		errs = append(errs, fmt.Errorf("%s: no mac attribute; per-interface settings are found by the interface's MAC", el))
	}
	for _, o := range x.Other {
		errs = append(errs, fmt.Errorf("%s: unknown element <%s>; it takes attributes only", el, o.XMLName.Local))
	}
	return mi, errs
}

// attrs drops namespace declarations from as.
func attrs(as []xml.Attr) []xml.Attr {
	var out []xml.Attr
	for _, a := range as {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		out = append(out, a)
	}
	return out
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// FailModeOf returns the fail mode of the domain XML b as far as it can be
// read, for when ParseDomain fails: ours reports whether b mentions
// vifsec's namespace. When it does but the fail attribute cannot be read
// (the XML breaks before it, or it is not open or closed), the mode is
// FailClosed: a domain that asked vifsec to protect it does not start
// unprotected because its XML could not be read.
func FailModeOf(b []byte) (m FailMode, ours bool) {
	if !HasMetadata(b) {
		return FailOpen, false
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return FailClosed, true
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != Namespace || se.Name.Local != "vm" {
			continue
		}
		for _, a := range se.Attr {
			if a.Name.Space == "" && a.Name.Local == "fail" {
				switch a.Value {
				case "open":
					return FailOpen, true
				case "closed":
					return FailClosed, true
				}
				return FailClosed, true
			}
		}
		return FailOpen, true
	}
}

// SniffUUID returns the domain's <uuid> from an XML that may be broken
// after it, in lower case, "" if it cannot be read: the hook needs it at
// stopped to detach the domain's VMs whatever else is wrong with the XML.
func SniffUUID(b []byte) string {
	dec := xml.NewDecoder(bytes.NewReader(b))
	depth := 0
	inUUID := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			inUUID = depth == 2 && t.Name.Local == "uuid"
		case xml.EndElement:
			depth--
			inUUID = false
		case xml.CharData:
			if inUUID {
				if u := strings.ToLower(strings.TrimSpace(string(t))); validUUID(u) {
					return u
				}
				return ""
			}
		}
	}
}
