// Package datapath is the per-packet pipeline (ARCHITECTURE.md), assembled
// from vif, tenant and sa/esp: frames a VM sends are classified against its
// outbound SPD and leave on the uplink clear, encrypted or not at all;
// frames from the uplink are demultiplexed by (vlan, dst mac), ESP is
// looked up by (vlan, mac, SPI), decapsulated and checked against the VM's
// inbound SPD before the VM sees it.
//
// The daemon owns the desired state and calls Engine.Update with a complete
// table; the engine publishes it as an immutable snapshot through an
// atomic pointer, so workers never lock per packet. The rest of what a
// packet's handling depends on (IPsec on or off, the uplink and its MTU,
// the VXLAN overlay and its next hops, ingress coalescing) is published
// the same way; a worker loads both once per batch. Workers are one
// goroutine per queue of each port: a port is one queue, or several
// (vif.Multi: AF_PACKET sockets in one PACKET_FANOUT hash group, so a
// flow or an SA stays on one worker and keeps its order). Each worker
// has its crypto scratch, moves frames in batches, and allocates nothing
// per packet (proved by AllocsPerRun tests with viftest ports). A worker
// writes to another port on the queue its number picks, under that
// queue's lock only. What workers of one port share is atomic (counters,
// the ICMP rate limiter, SA sequence numbers) or behind the SA's replay
// lock. vifsecd gives the uplink one queue per CPU and each VIF one
// (internal/attach: so that each of a VM's SAs is encrypted by one worker
// and leaves in sequence order). The uplink's workers keep their buffers; a
// VIF's worker waits for frames holding none, takes a set (receive
// buffers — 8 for 64 KiB super-frames on a port with virtio-net headers
// —, broadcast spares, segment buffers, its output queue) from a pool
// shared by the engine's VIF workers when frames arrive, and gives it
// back when its queue is drained (bufs.go). A quiet VM thus costs its
// table entry, its sockets and parked goroutines, whatever its queues;
// the pools hold at most twice as many sets as there are CPUs, and a
// worker with more to read yields its set to one that waits.
//
// One flow still runs on one worker, so the crypto of a run of packets
// is shared (crypt.go): a worker collects the packets of an AEAD SA it
// would seal (a super-frame's segments, a batch) or open (a batch, a UDP
// GSO train cut by SplitUDP) into a run, and where the run ends —
// before anything else is queued or delivered, before its buffers are
// reused, at the end of the batch — seals it with one block of sequence
// numbers reserved at once (sa.SA.ReserveSeq, esp.EncapSeq) or opens it
// (esp.Decap, safe on one SA from several goroutines), taking packets
// one at a time from a shared index alongside the engine's crypto
// helpers (on Linux one per CPU beyond the first, or as many as
// SetCryptoHelpers asks, at most that; none with one CPU or when 0 are
// asked for: then the crypto is inline, packet by packet), and sends the results
// in the run's order. Wire order is sequence order: a packet whose number is
// not above the last its run sent on the SA is dropped, never sent
// (drop: reordered). A worker offers a run only while some CPU runs no
// worker's batch, never waits for a helper that did not start, and
// stops offering for a while when sharing did not pay (a busy host);
// helpers park in the network poller, not on a channel. The run,
// its jobs and the helpers' scratch are made once, so nothing is
// allocated per packet or per run.
//
// ESP may travel in UDP (RFC 3948 NAT traversal, per SA): the uplink takes
// UDP to port 4500 as ESP when its SPI names an SA of the VM (other UDP to
// 4500 is the guest's). For VMs whose IKE the gateway runs (VM.IKE), IKE
// addressed to the VM is taken off the wire for the IKE handler,
// NAT-keepalives are consumed, and SendIKE speaks from the VM's MAC and
// addresses (ike.go), resolving the peer's MAC with ARP or Neighbor
// Discovery as the guest would (neigh.go).
//
// UDP GSO (outbound.go joinTrains, inbound.go splitOwnUDP): toward an
// uplink with virtio-net headers, the ESP-in-UDP (or VXLAN) datagrams made
// from one TSO super-frame of a VM leave as one GSO_UDP_L4 super-frame,
// which the kernel, the NIC or the receiver behind a veth cuts again; such
// a super-frame arriving whole from the uplink is cut (gso.SplitUDP) and
// its datagrams handled one by one in the same batch, when vifsec is the
// one to consume it (an inbound SA of the VM it is addressed to, or the
// local VTEP). A guest's own UDP super-frame is delivered whole. Trains
// sent and cut, and their datagrams, are counted per worker and added to
// Engine.GSOStats once per batch (`vifsec stats --uplink`).
//
// What a frame may be is decided before anything else looks at it, the
// same way in both directions (frame.go): at most one VLAN tag, counting
// the one AF_PACKET may have moved into packet metadata, which must be
// 802.1Q and name the binding's VLAN (or VID 0, a priority tag, which is
// normalised); an EtherType on the allow-list IPv4, IPv6, ARP; ARP and
// neighbour discovery well formed, bounded in size and, from a VM,
// claiming only its MAC and --ip addresses; and an IP packet a VM sends
// to the MAC of another VM on the host delivered only when it is for one
// of that VM's --ip. Everything else is dropped and counted by reason
// (bad-tag, ethertype, bad-neighbor, wrong-destination), on the VM, or as
// a malformed uplink frame when a stack of tags leaves its tenant unknown.
// So every IP packet that crosses, at any depth, went through its VM's
// SPD, and a VM's stack sees only frames of its own binding.
//
// Fragments (RFC 4301 §7): a non-first fragment carries no ports, so it
// cannot be classified by a port-specific policy. The data path applies
// §7.1 statelessly, in both directions, through tenant's LookupFragment:
// its ports are taken as unknown, and it is classified only when every
// policy that could be the first match of its datagram — each port-
// specific one before the first that matches any port, and that one or
// the default — has the same outcome (action and, for ipsec, SA);
// otherwise it is dropped (fragment-policy). Outbound, a fragment of an
// ipsec flow therefore leaves on that flow's SA or not at all (transport
// mode refuses fragments: whole datagrams only); inbound, a clear
// fragment that any ipsec policy could cover is dropped, and one that
// arrived on an SA must have that SA for an outcome. Tracking fragments
// per datagram (the first fragment's verdict by source, destination,
// protocol and IP ID) would let more through, but it needs per-VM state
// that one VM's fragments could fill, order dependence (a non-first
// fragment may come first) and a table that a forged first fragment
// could poison; the stateless rule needs none of these and costs nothing
// where policies do not name ports. Fragments vifsec cuts itself (IPv4
// too big for the path, pmtu.Fragment) keep the policy of the datagram
// they were cut from.
//
// What it must not do: parse CLI input, touch the store, or block on the
// control plane.
package datapath
