// Package attach keeps the data path's ports in line with the configured VM
// bindings and uplink: it opens a VIF when its VM is attached and its
// interface exists, closes it when the VM is detached or the interface goes
// away (a VM shut down), and re-opens it when the interface comes back.
// It is the glue between the daemon's desired state and datapath.Engine,
// and must not validate configuration (the daemon did) or touch packets.
//
// # The wire carries no guest frame vifsec did not emit
//
// vifsec reads a VIF with a packet socket, which gets a copy of each
// frame; the kernel goes on with the original. On a bridge port (libvirt
// type='bridge' and 'network', a switchdev representor in a bridge, an
// Open vSwitch port) the bridge forwards the guest's frames in clear beside
// vifsec's ESP; on a host that routes (libvirt type='ethernet' with an
// address on the host end) the IP stack routes them. So before a VIF's
// port opens, the attacher puts vifsec's guard on it (vif.InstallGuard):
// a tc filter, first on the interface's clsact ingress, that drops every
// frame. Packet taps run before the tc ingress hook and the hook before
// the bridge's rx_handler and the IP stack, so vifsec still reads every
// frame and the kernel forwards none, whatever it would have done with
// them. The guard is not tied to the topology found at attach time: it
// holds when the VIF is put into a bridge later, or the host starts
// routing.
//
// The other direction: a bridge forwards frames from the wire to the
// guest, and a host that routes sends it packets, in clear, past
// vifsec's inbound policy. The guard's second filter, first on the VIF's
// clsact egress, drops every frame the kernel transmits there; vifsec's
// own writes skip the tc egress hook and the qdiscs (its packet sockets
// on VIFs set PACKET_QDISC_BYPASS; the uplink's, never guarded, send
// through the qdisc so the kernel can cut UDP GSO trains in software),
// so the guest gets what vifsec wrote and
// nothing else. clsact cannot exist beside an ingress qdisc, which
// libvirt adds for <bandwidth><outbound>. There the egress filter goes
// first on the VIF's root qdisc: libvirt's htb when <inbound> put one
// there, else a root htb of vifsec's own (handle 5653:, no classes) in
// place of the kernel's default qdisc. libvirt's shaping goes on as
// before: its qdiscs stay, and neither ever held vifsec's frames (the
// packet taps read the guest's before the ingress policing, vifsec's
// writes skip the root qdisc). If pref 1 of that htb is taken (libvirt's
// <inbound> puts an fw filter at prio 1 there), the drop filter cannot
// run first and the VM is refused, the status naming the filter: libvirt
// with both <inbound> and <outbound> is refused. Refusing every VIF
// with an ingress qdisc was not taken: it would refuse libvirt's
// <bandwidth> outright. A tcx egress program (bpf_link, kernel 6.6+)
// would coexist with any qdisc, but ties the guard to a kernel feature
// and a pinned link. If libvirt re-does its root qdisc (virsh
// domiftune), the filter goes with the old one until the next reconcile
// puts it back.
//
// Alternatives not taken: taking the VIF out of its bridge (nomaster)
// changes the operator's topology, libvirt puts it back (a network's
// reconnect), and it does nothing for routing; refusing bridge ports
// would refuse libvirt's two most common interface types, which the
// guard protects fully.
//
// Kinds the guard cannot protect are refused, with a status naming the
// kind and its mode (vif.CheckKind): a macvlan or macvtap in any mode
// transmits its guest's frames straight to its lower device, where a
// socket on the VIF sees none of them and nothing on the VIF can stop
// them. The libvirt hook then refuses to start a fail="closed" domain.
//
// Per kind, as the lab test TestIntegrationGuestFramesNeverLeak checks:
//
//	veth host end, bridge port or routed      guard (10 ESP, 0 clear on the wire;
//	                                          the guest gets 0 of 10 clear wire
//	                                          frames, 10 of 10 from the peer's ESP)
//	tap, bridge port or routed                guard (the same)
//	switchdev representor (in a bridge)       guard (tested with a veth standing in)
//	SR-IOV VF netdev, plain device            guard
//	macvlan, macvtap: bridge, vepa, private,
//	passthru, source                          refused
//	anything else (bridge, bond, vlan, tun…)  refused: not a VM's interface
//
// No kind goes without the guard: a VIF in no bridge still has the host's
// IP stack behind it, which routes what the guest addresses to it.
//
// Life cycle: the guard goes on before the port opens and is checked on
// every reconcile (re-installed when someone took it off; when that
// fails the port closes and the status says why). If it cannot be
// installed the VM is not attached. It comes off when no wanted VM uses
// the interface any more (detach, or a move to another device). It stays
// when vifsecd stops or dies, so the guest is cut off rather than
// exposed while vifsec is not there; the next vifsecd takes it over at
// attach. The uplink carries the host's own traffic and gets no guard.
package attach
