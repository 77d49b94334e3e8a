// Package datapath is the per-packet pipeline of ARCHITECTURE.md, assembled
// from vif, tenant and sa/esp: frames a VM sends are classified against its
// outbound SPD and leave on the uplink clear, encrypted or not at all;
// frames from the uplink are demultiplexed by (vlan, dst mac), ESP is
// looked up by (vlan, mac, SPI), decapsulated and checked against the VM's
// inbound SPD before the VM sees it.
//
// The daemon owns the desired state and calls Engine.Update with a complete
// table; the engine publishes it as an immutable snapshot through an
// atomic pointer, so workers never lock per packet. Workers are one
// goroutine per VIF plus one for the uplink; each owns its buffers and
// crypto scratch, moves frames in batches, and allocates nothing per
// packet (proved by AllocsPerRun tests with viftest ports).
//
// ESP may travel in UDP (RFC 3948 NAT traversal, per SA): the uplink takes
// UDP to port 4500 as ESP when its SPI names an SA of the VM (other UDP to
// 4500 is the guest's). For VMs whose IKE the gateway runs (VM.IKE), IKE
// addressed to the VM is taken off the wire for the IKE handler,
// NAT-keepalives are consumed, and SendIKE speaks from the VM's MAC and
// addresses (ike.go), resolving the peer's MAC with ARP or Neighbor
// Discovery as the guest would (neigh.go).
//
// What it must not do: parse CLI input, touch the store, or block on the
// control plane.
package datapath
