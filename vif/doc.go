// Package vif finds VM interfaces and moves batches of Ethernet frames on
// them: the host end of a veth, a tap (libvirt's vnetN or one vifsec
// creates), an SR-IOV VF or its switchdev representor, and the uplink.
// It knows nothing about tenants, policies or ESP.
//
// Packet I/O is AF_PACKET with recvmmsg/sendmmsg batches on a non-blocking
// socket driven by Go's netpoller (so a hundred idle VIFs cost a hundred
// parked goroutines, not a hundred blocked threads). The VLAN tag the
// kernel strips into packet metadata (PACKET_AUXDATA) is returned beside
// each frame. The socket ignores outgoing frames (PACKET_IGNORE_OUTGOING),
// so frames vifsec sends never loop back into its own reader, and bypasses
// the qdisc (PACKET_QDISC_BYPASS), as a VM's frames already went through
// the guest's; a port opened with PacketOptions.Qdisc (the uplink) sends
// through it, so that the kernel segments in software the GSO super-frames
// the device cannot take whole.
//
// Memory-mapped TPACKET_V3 rings (PACKET_RX_RING, PACKET_TX_RING) and an
// AF_XDP socket were measured against recvmmsg/sendmmsg on a veth
// (BenchmarkReceive, BenchmarkTransmit; the ring port and the AF_XDP
// receiver live in the package's tests) and left out. The receive ring
// took as many frames per second or a little more, at a fifth to a tenth
// of the reader thread's CPU per frame but only 2-14 % less in all: the
// kernel's copy into the ring moves to the sender's side, and ReadBatch
// still copies each frame into the caller's buffer. It was slower for
// 64 KiB virtio-net super-frames (two copies, one frame per block),
// delays a lone frame by the block retire timeout (BenchmarkLatency:
// 1.0-1.1 ms from write to ReadBatch, against 8-13 µs with recvmmsg),
// and pins 2 MiB per socket where a socket buffer is a limit, not an
// allocation. The transmit ring was no faster than sendmmsg. AF_XDP in
// copy mode on a veth (XDP in the driver, redirect to an XSKMAP) took
// about half the frames per second at about twice the CPU per frame.
//
// Sending through the qdisc (PacketOptions.Qdisc) rather than past it
// was measured too: per frame (BenchmarkTransmit sendmmsg-64 against
// sendmmsg-64-qdisc on the veth's noqueue and sendmmsg-64-pfifo under a
// root pfifo_fast, 1500-byte frames: 2.1-2.8, 1.8-2.9 and 1.9-4.0 µs of
// the writer's CPU per frame over three runs on a loaded 2-core machine)
// and end to end (plain ESP through two vifsecd with the uplink socket in
// either mode: bypass/qdisc 0.90-1.06 over six alternating runs), no
// difference stood out of the noise. A socket's qdisc path with an empty
// queue hands the frame straight to the driver; what a frame costs is the
// skb the kernel builds for it, which both modes pay.
//
// A packet socket gets a copy of what the interface receives; the kernel
// still forwards the original (a bridge port) or routes it, and a bridge
// or the host's routing transmits frames to the guest beside vifsec's.
// InstallGuard puts a tc ingress filter on a VIF that drops every frame
// after the packet taps have run (guard.go tells why that order holds),
// and the same filter first on its egress, which vifsec's writes never
// pass (PACKET_QDISC_BYPASS skips the qdiscs and the tc egress hook); and
// CheckKind tells the kinds a guard cannot protect: a macvlan or macvtap
// transmits its guest's frames to its lower device, past any socket on
// it. The uplink is never guarded: it carries the host's own traffic.
//
// What it must not do: interpret frames, or keep package-global state.
package vif
