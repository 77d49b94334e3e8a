// Package vtep keeps the data path's VXLAN underlay in line with the
// daemon's uplink and forwarding database (Controller): it compiles the
// FDB by VNI and the underlay SAs into the data path's Overlay, holds the
// VXLAN UDP port (and, with --protect underlay, protocol 50) on the host
// so that the host's stack does not answer vifsec's underlay with ICMP,
// and resolves the remote VTEPs' next-hop MACs through the kernel's
// neighbour table of the uplink, promptly while frames wait for one.
//
// It must not change the daemon's state, handle packets (the data path
// does; the held sockets are drained unread), or keep a table of its own
// beyond what the latest snapshot and the kernel say.
package vtep
