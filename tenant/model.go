package tenant

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vifsec/vifsec/sa"
)

// MaxVNI is the highest VXLAN network identifier (24 bits, RFC 7348).
const MaxVNI = 1<<24 - 1

// Tenant is one customer of the host: its VMs share a VXLAN network and a
// default action. Equivalent to: `vifsec tenant add --tenant NAME [--vni N]
// [--default-action none|discard]`.
type Tenant struct {
	Name string `json:"name"`
	// VNI is the tenant's VXLAN network identifier, 1-16777215; 0 means
	// none (flat L2, frames go onto the uplink as they are).
	VNI uint32 `json:"vni,omitempty"`
	// DefaultAction applies to a VM's traffic that matches no SP:
	// ActionNone (pass clear, as ESXi does, the CLI's default) or
	// ActionDiscard.
	DefaultAction Action `json:"default_action"`
}

// Validate returns nil if t can be stored, else every problem found,
// each naming its flag.
func (t *Tenant) Validate() error {
	var errs []error
	if err := ValidName(t.Name); err != nil {
		errs = append(errs, flagErr("--tenant", err))
	}
	if t.VNI > MaxVNI {
		errs = append(errs, fmt.Errorf("--vni: %d is not a VNI; use 1-%d, or leave it out for none", t.VNI, MaxVNI))
	}
	if t.DefaultAction != ActionNone && t.DefaultAction != ActionDiscard {
		errs = append(errs, fmt.Errorf("--default-action: %v is not a default action; use none or discard (ipsec needs an SA, so it is an SP's action)", t.DefaultAction))
	}
	return errors.Join(errs...)
}

// VM is one virtual interface (VIF) of a guest: the host-side device and
// the identity (VLAN, MAC) that keys its SAs. Equivalent to:
// `vifsec vm attach --vm NAME --tenant NAME --dev IFNAME [--netns NS]
// --mac MAC [--vlan 0-4094] [--ip ADDR]...`.
type VM struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	// Dev is the host-side interface: a veth peer, tap, SR-IOV VF or its
	// representor (a macvlan or macvtap is refused at attach).
	Dev string `json:"dev"`
	// Netns is the network namespace Dev lives in; "" means the daemon's.
	Netns string `json:"netns,omitempty"`
	// MAC is the guest's unicast MAC on this VIF.
	MAC MAC `json:"mac"`
	// VLAN is the VIF's VLAN ID, 0-4094; 0 means untagged.
	VLAN uint16 `json:"vlan"`
	// IPs are the addresses the VM may source (anti-spoofing); none means any.
	IPs []netip.Addr `json:"ips,omitempty"`
	// CreateTap asks vifsec to create Dev as a persistent tap device when
	// it does not exist (for `qemu -netdev tap,ifname=DEV,script=no`), and
	// to delete it when the VM is detached.
	CreateTap bool `json:"create_tap,omitempty"`
	// Origin says who attached the VM when it was not an operator:
	// "libvirt:UUID" for an interface of the libvirt domain UUID, attached
	// by vifsec-hook or the daemon's libvirt reconciliation, which detach
	// it again when the domain stops. "" means an operator (`vm attach`).
	Origin string `json:"origin,omitempty"`
}

// maxOrigin bounds VM.Origin ("libvirt:" and a UUID need 44 bytes).
const maxOrigin = 128

// maxIfName is IFNAMSIZ-1 (include/uapi/linux/if.h): a Linux interface
// name is at most 15 bytes.
const maxIfName = 15

// Validate returns nil if v can be stored, else every problem found,
// each naming its flag. It does not check that Tenant exists or that Dev
// is present; the daemon does.
func (v *VM) Validate() error {
	var errs []error
	if err := ValidName(v.Name); err != nil {
		errs = append(errs, flagErr("--vm", err))
	}
	if err := ValidName(v.Tenant); err != nil {
		errs = append(errs, flagErr("--tenant", err))
	}
	if v.Dev == "" || len(v.Dev) > maxIfName || v.Dev == "." || v.Dev == ".." ||
		strings.ContainsAny(v.Dev, "/: \t\n\x00") {
		errs = append(errs, fmt.Errorf("--dev: %q is not an interface name; use 1-15 characters without '/', ':' or spaces", v.Dev))
	}
	if strings.ContainsRune(v.Netns, 0) {
		errs = append(errs, fmt.Errorf("--netns: %q contains a NUL byte", v.Netns))
	}
	if err := checkVMMAC(v.MAC); err != nil {
		errs = append(errs, fmt.Errorf("--mac: %v %w", v.MAC, err))
	}
	if v.VLAN > MaxVLAN {
		errs = append(errs, fmt.Errorf("--vlan: %d is not a VLAN ID; use 0-4094 (0 means untagged)", v.VLAN))
	}
	if len(v.Origin) > maxOrigin || strings.IndexFunc(v.Origin, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		errs = append(errs, fmt.Errorf("origin: %q is not an origin; use up to %d printable ASCII characters without spaces, e.g. libvirt:UUID", v.Origin, maxOrigin))
	}
	for i, a := range v.IPs {
		switch {
		case !a.IsValid():
			errs = append(errs, fmt.Errorf("--ip: address %d is not set", i+1))
		case a.Zone() != "":
			errs = append(errs, fmt.Errorf("--ip: %v has a zone; zones are not accepted", a))
		case a.IsUnspecified() || a.IsMulticast():
			errs = append(errs, fmt.Errorf("--ip: %v cannot be a source address; give the VM's unicast addresses", a))
		}
	}
	return errors.Join(errs...)
}

// Policy is one security policy (SP) of a VM. Equivalent to:
// `vifsec sp add --vm NAME --sp-source ADDR/LEN --sp-destination ADDR/LEN
// --source-port P --destination-port P --upper-layer-protocol PROTO
// --flow-direction in|out --action none|discard|ipsec
// --sp-mode transport|tunnel [--sa-name NAME] --sp-name NAME`.
//
// Src, Dst, the ports and ULProto are the selectors; Direction says which
// SPD the policy belongs to, seen from the VM (out: what the VM sends).
// The selectors are those of the clear packet: the inner packet in tunnel
// mode. Validate states the rules that combine the fields.
//
// In JSON, Action, ULProto, the ports, Direction and Mode are their CLI
// spellings; the zero value of each is "".
type Policy struct {
	Name      string       `json:"name"`
	VM        string       `json:"vm"`
	Src       netip.Prefix `json:"src"`
	Dst       netip.Prefix `json:"dst"`
	SrcPort   Port         `json:"src_port"`
	DstPort   Port         `json:"dst_port"`
	ULProto   Proto        `json:"ul_proto"`
	Direction sa.Direction `json:"direction"`
	Action    Action       `json:"action"`
	// Mode is the IPsec mode; it is required with ActionIPsec and
	// accepted but unused with the other actions (so an esxcli example
	// that always gives --sp-mode can be pasted as it is).
	Mode   sa.Mode `json:"mode,omitempty"`
	SAName string  `json:"sa_name,omitempty"`
}

// Validate returns nil if p can be installed, else every problem found
// (joined with errors.Join), each naming the flags involved. The rules:
//
//   - Name and VM are valid names (ValidName).
//   - Src and Dst are set, have no host bits set (ParsePrefix masks them),
//     and are of the same family: a policy selects IPv6 or IPv4 traffic.
//   - ULProto, SrcPort, DstPort, Direction and Action are set.
//   - Ports select TCP and UDP ports. With ULProto any, a port other than
//     any matches only TCP and UDP packets carrying that port.
//   - With ULProto icmp6 or icmp, SrcPort must be any (ICMP has no ports)
//     and DstPort is the ICMP type: any or 0-255. icmp6 needs IPv6
//     prefixes and icmp IPv4 prefixes.
//   - ActionIPsec needs SAName (a valid name) and Mode transport or tunnel.
//   - ActionNone and ActionDiscard need no SA and must not name one (a
//     stale reference would keep `sa remove` from removing that SA); Mode
//     may be left unset.
//
// Validate does not check that VM or SAName exist; the daemon does.
func (p *Policy) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := ValidName(p.Name); err != nil {
		errs = append(errs, flagErr("--sp-name", err))
	}
	if err := ValidName(p.VM); err != nil {
		errs = append(errs, flagErr("--vm", err))
	}
	srcOK := checkSelector(&errs, "--sp-source", p.Src)
	dstOK := checkSelector(&errs, "--sp-destination", p.Dst)
	if srcOK && dstOK && p.Src.Addr().Is4() != p.Dst.Addr().Is4() {
		add("--sp-source %v and --sp-destination %v are of different address families; a policy selects IPv6 or IPv4 traffic, not both", p.Src, p.Dst)
	}

	switch {
	case p.ULProto == ProtoInvalid || p.ULProto > ProtoICMP:
		add("--upper-layer-protocol: not set; use any, tcp, udp, icmp6 or icmp")
	case p.ULProto == ProtoICMP6 && srcOK && p.Src.Addr().Is4():
		add("--upper-layer-protocol icmp6 selects IPv6 traffic but --sp-source %v is IPv4; use icmp for IPv4", p.Src)
	case p.ULProto == ProtoICMP && srcOK && !p.Src.Addr().Is4():
		add("--upper-layer-protocol icmp selects IPv4 traffic but --sp-source %v is IPv6; use icmp6 for IPv6", p.Src)
	}
	if !p.SrcPort.IsValid() {
		add("--source-port: not set; use 0-65535 or any")
	} else if p.ULProto.isICMP() && !p.SrcPort.IsAny() {
		add("--source-port must be any with --upper-layer-protocol %v: ICMP has no ports (--destination-port selects the type)", p.ULProto)
	}
	if !p.DstPort.IsValid() {
		add("--destination-port: not set; use 0-65535 or any")
	} else if n, ok := p.DstPort.Number(); ok && p.ULProto.isICMP() && n > 255 {
		add("--destination-port %d is not an %v type; with --upper-layer-protocol %v it selects the type, 0-255 or any", n, p.ULProto, p.ULProto)
	}

	if p.Direction != sa.DirIn && p.Direction != sa.DirOut {
		add("--flow-direction: not set; use in or out")
	}
	modeOK := p.Mode == sa.ModeTransport || p.Mode == sa.ModeTunnel
	if !modeOK && p.Mode != sa.ModeInvalid {
		add("--sp-mode: %v is not a mode; use transport or tunnel", p.Mode)
	}
	switch p.Action {
	case ActionIPsec:
		if p.SAName == "" {
			add("--action ipsec requires --sa-name, the SA that protects the traffic")
		} else if err := ValidName(p.SAName); err != nil {
			errs = append(errs, flagErr("--sa-name", err))
		}
		if p.Mode == sa.ModeInvalid {
			add("--action ipsec requires --sp-mode transport or tunnel")
		}
	case ActionNone, ActionDiscard:
		if p.SAName != "" {
			add("--sa-name %s is only used with --action ipsec; leave it out with --action %v", p.SAName, p.Action)
		}
	default:
		add("--action: not set; use none, discard or ipsec")
	}
	return errors.Join(errs...)
}

// checkSelector appends the problems of prefix p given with flag and
// reports whether p is usable.
func checkSelector(errs *[]error, flag string, p netip.Prefix) bool {
	switch {
	case !p.IsValid():
		*errs = append(*errs, fmt.Errorf("%s: not set; write ADDR/LEN, e.g. %s or %s", flag, examplePrefix6, examplePrefix4))
		return false
	case p != p.Masked():
		*errs = append(*errs, fmt.Errorf("%s: %v has host bits set; write %v", flag, p, p.Masked()))
		return false
	}
	return true
}

// flagErr prefixes err with the flag it is about.
func flagErr(flag string, err error) error { return fmt.Errorf("%s: %w", flag, err) }

// policyAlias has Policy's fields without its methods.
type policyAlias Policy

// policyJSON shadows Direction and Mode, whose package sa types have no
// text form, with their CLI spellings; encoding/json prefers the shallower
// field of the same name.
type policyJSON struct {
	*policyAlias
	Direction string `json:"direction"`
	Mode      string `json:"mode,omitempty"`
}

// MarshalJSON encodes p with every enum as its CLI spelling.
func (p Policy) MarshalJSON() ([]byte, error) {
	if p.Direction > sa.DirOut || p.Mode > sa.ModeTunnel {
		return nil, fmt.Errorf("tenant: cannot marshal policy %q: direction %v, mode %v", p.Name, p.Direction, p.Mode)
	}
	j := policyJSON{policyAlias: (*policyAlias)(&p)}
	if p.Direction != sa.DirInvalid {
		j.Direction = p.Direction.String()
	}
	if p.Mode != sa.ModeInvalid {
		j.Mode = p.Mode.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (p *Policy) UnmarshalJSON(b []byte) error {
	j := policyJSON{policyAlias: (*policyAlias)(p)}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	p.Direction, p.Mode = sa.DirInvalid, sa.ModeInvalid
	if j.Direction != "" {
		d, err := sa.ParseDirection(j.Direction)
		if err != nil {
			return fmt.Errorf("tenant: policy direction: %w", err)
		}
		p.Direction = d
	}
	if j.Mode != "" {
		m, err := sa.ParseMode(j.Mode)
		if err != nil {
			return fmt.Errorf("tenant: policy mode: %w", err)
		}
		p.Mode = m
	}
	return nil
}
