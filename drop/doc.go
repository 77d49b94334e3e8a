// Package drop is vifsec's one vocabulary of reasons for dropping a
// packet: every layer of the data path (sa, sa/esp, offload, overlay,
// internal/datapath) returns a Reason, and the counters that /metrics,
// `vifsec stats` and the API export are indexed by it, under the names
// String gives (scripts depend on them: they do not change).
//
// Reasons below NumCounted are counters, kept per VM and per SA. The
// reasons after it are finer ones that the offload and overlay packages
// return to say exactly why they refused a packet; each is counted under
// the counter Counted names (a malformed virtio_net_hdr is "malformed").
//
// It must not import anything but the standard library, hold state, or
// allocate: a Reason is a small integer, never an error built per packet.
package drop
