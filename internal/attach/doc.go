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
//	veth host end, bridge port or routed      guard (10 ESP, 0 clear on the wire)
//	tap, bridge port or routed                guard (10 ESP, 0 clear on the wire)
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
