package vif

import (
	"errors"
	"fmt"
)

// A guard keeps the kernel from doing anything with a VM's frames but
// hand them to vifsec: a packet socket only gets a copy of what arrives
// on a VIF, and the kernel goes on to forward the original if the VIF is
// a bridge port (or an Open vSwitch port), routes it if it is addressed
// to the host, and so on. The guard is a tc filter, first in the VIF's
// ingress (clsact), that drops every frame: in the kernel's receive path
// (__netif_receive_skb_core) the packet taps, vifsec's socket among them,
// run before the tc ingress hook, and the hook runs before any rx_handler
// (bridge, Open vSwitch, macvlan, bond) and before the protocol handlers
// (IPv4, IPv6, ARP). vifsec therefore still reads every frame, and
// nothing else does. The guard is the VIF's own state in the kernel: it
// stays when vifsec stops or dies (the guest is then cut off, not
// exposed) and is removed when the VM is detached.

// ErrKindRefused is wrapped by CheckKind's error: vifsec cannot attach to
// an interface of this kind without letting the guest's frames reach the
// wire beside it.
var ErrKindRefused = errors.New("refused")

// CheckKind says whether a guard on an interface like info keeps every
// frame of the guest behind it off the wire, that is, whether the guest's
// frames enter the kernel as frames received on that very interface.
//
// They do on a veth's host end, a tap (the guest writes into its file),
// an SR-IOV VF's netdev, a switchdev representor (what its VF sends and
// the eswitch does not forward in hardware) and a plain device. They do
// not on a macvlan or macvtap, in any mode (bridge, vepa, private,
// passthru, source): the guest's frames are transmitted by that device
// (macvlan_start_xmit) straight to its lower device or a sibling, so no
// socket on it sees them and nothing on it can hold them back; what
// vifsec writes to it goes to the lower device too, not to the guest.
// Other kinds (a bridge, bond, VLAN, VXLAN or tun device, loopback) carry
// no one guest's frames as received frames either.
func CheckKind(info Info) error {
	switch info.Type {
	case TypeVeth, TypeTap, TypeVF, TypeRepresentor, TypeDevice:
		return nil
	case TypeMacvlan, TypeMacvtap:
		mode := "unknown mode"
		if info.Macvlan != nil {
			mode = "mode " + info.Macvlan.Mode
		}
		return fmt.Errorf("%w: %s is a %s (%s): the guest's frames leave it straight for its lower device, where vifsec can neither read nor stop them; give the VM a tap or veth (libvirt type='bridge', 'network' or 'ethernet', not 'direct')",
			ErrKindRefused, info.Name, info.Type, mode)
	default:
		return fmt.Errorf("%w: %s is a %s, not a VM's interface (vifsec attaches to a veth, tap, SR-IOV VF or switchdev representor)",
			ErrKindRefused, info.Name, info.Type)
	}
}
