package datapath

import (
	"encoding/binary"
	"fmt"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/sa"
)

// Neighbour resolution on a VM's behalf, for SendIKE (ike.go). SendIKE
// needs the next-hop MAC of the peer on the wire; the guest knows it, but
// vifsec does not ask the guest: it does what the guest's own stack would.
//
//  1. Lookup: the MAC learned for (VM, peer address) within neighTTL;
//     else the daemon's table (SetNeighbors).
//  2. Request: on a miss, an ARP request (IPv4, RFC 826) or a Neighbor
//     Solicitation (IPv6, RFC 4861 §7.2.2: to the solicited-node
//     multicast address, with the source link-layer address option) leaves
//     from the VM's MAC and the datagram's local address, broadcast as the
//     guest's own would be (802.1Q-tagged with its VLAN, or into VXLAN to
//     every remote VTEP of its VNI), at most once per neighRetry per
//     (VM, address). The datagram waits in the entry: one per (VM,
//     address), the newest (a retransmission replaces the one before; a
//     NAT-keepalive never replaces an IKE message).
//  3. Answer: an ARP reply or a solicited Neighbor Advertisement from the
//     wire, unicast to the VM's MAC and to one of its addresses, about an
//     address asked for within neighPendingTTL, is learned (the ARP sender
//     hardware address; the NA's target link-layer address option, or its
//     Ethernet source without one) and the waiting datagram leaves. An
//     answer about an address nobody asked for teaches nothing, so neither
//     the wire nor a guest can fill the table. The frame goes on to the
//     guest as well, whose stack discards an answer it did not ask for
//     (RFC 4861 §7.2.5; Linux merges an unsolicited ARP reply only into an
//     entry it already has).
//  4. Refresh: each punted IKE frame (re)learns its source MAC for its
//     source address (ike.go), as does a guest's frame dropped for want of
//     an SA when its destination is an address being resolved (worker.go).
//
// The address resolved is the peer's own (the datagram's remote): vifsec
// knows the guest's addresses, not its prefixes or routes. A peer on the
// VM's link answers. A peer behind a router does not (barring proxy ARP):
// its next hop must come from SetNeighbors, from the peer's first IKE
// frame (its source MAC is the router's), or, in transport mode, from the
// guest's own frames toward it; until then SendIKE asks once a second and
// each waiting datagram is dropped neighPendingTTL after it was queued.
// A peer that is another VM on this host and VLAN is not reached either:
// what SendIKE sends goes to the uplink only.
//
// Both tables are bounded (maxIKENeighbors learned, maxNeighPending being
// resolved). Frames from the wire that are neither ARP nor IPv6 cost
// nothing here; ARP and IPv6 frames cost one atomic load while no address
// is being resolved, and never allocate.

const (
	// neighTTL is how long a learned next hop is used without being
	// learned again.
	neighTTL = 5 * time.Minute
	// neighRetry is the least time between two requests for one (VM,
	// address) (Linux's retrans_time: 1 s).
	neighRetry = time.Second
	// neighPendingTTL is how long after the last request an answer is
	// accepted, and how long a datagram waits for one (Linux gives up
	// after 3 probes a second apart).
	neighPendingTTL = 3 * time.Second
	// maxIKENeighbors bounds the learned table: when it is full, expired
	// entries go first, then any.
	maxIKENeighbors = 4096
	// maxNeighPending bounds the addresses being resolved at once; beyond
	// it SendIKE fails with ErrNoNeighbor.
	maxNeighPending = 1024
)

// ikeNeighbors is what SendIKE knows of peers' next-hop MACs, per VM, and
// what it is resolving.
type ikeNeighbors struct {
	mu      sync.Mutex
	m       map[ikeNeighKey]neighEntry
	pending map[ikeNeighKey]*neighPending
	// npending is len(pending), read without the lock: while it is 0,
	// nothing on the wire or from a guest is looked at.
	npending atomic.Int32
}

type ikeNeighKey struct {
	scope sa.Scope
	addr  netip.Addr
}

type neighEntry struct {
	mac header.MAC
	at  time.Time // learned
}

// neighPending is an address being resolved.
type neighPending struct {
	asked  time.Time  // when the last request left
	queued *queuedUDP // what waits for the answer; nil: nothing
}

// queuedUDP is a datagram SendIKE or SendNATKeepalive waits to send.
type queuedUDP struct {
	p      IKEPacket // Data is SendIKE's copy
	marker bool      // SendIKE's (marker on port 4500); false: a keepalive
	at     time.Time // queued
}

func keyOf(vm *vmState, addr netip.Addr) ikeNeighKey {
	return ikeNeighKey{sa.Scope{VLAN: vm.vlan, MAC: vm.mac}, addr.Unmap()}
}

// lookup returns the next hop learned for k within neighTTL of now.
func (n *ikeNeighbors) lookup(k ikeNeighKey, now time.Time) (header.MAC, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.m[k]
	if !ok {
		return header.MAC{}, false
	}
	if now.Sub(e.at) > neighTTL {
		delete(n.m, k)
		return header.MAC{}, false
	}
	return e.mac, true
}

// learn records mac as k's next hop (the punt path: any peer's IKE) and
// returns the datagram that waited for it, if any: the caller sends it.
func (n *ikeNeighbors) learn(k ikeNeighKey, mac header.MAC, now time.Time) *queuedUDP {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.putLocked(k, mac, now)
}

// learnIfPending is learn for answers on the wire and the guest's frames:
// only an address being resolved is learned.
func (n *ikeNeighbors) learnIfPending(k ikeNeighKey, mac header.MAC, now time.Time) (q *queuedUDP, learned bool) {
	if n.npending.Load() == 0 {
		return nil, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.pending[k]
	if !ok {
		return nil, false
	}
	if now.Sub(p.asked) > neighPendingTTL {
		n.dropPendingLocked(k) // asked too long ago: a late or forged answer
		return nil, false
	}
	return n.putLocked(k, mac, now), true
}

func (n *ikeNeighbors) putLocked(k ikeNeighKey, mac header.MAC, now time.Time) *queuedUDP {
	if _, ok := n.m[k]; !ok {
		if n.m == nil {
			n.m = make(map[ikeNeighKey]neighEntry)
		}
		if len(n.m) >= maxIKENeighbors {
			for k2, e := range n.m {
				if now.Sub(e.at) > neighTTL {
					delete(n.m, k2)
				}
			}
			for k2 := range n.m {
				if len(n.m) < maxIKENeighbors {
					break
				}
				delete(n.m, k2)
			}
		}
	}
	n.m[k] = neighEntry{mac: mac, at: now}
	p, ok := n.pending[k]
	if !ok {
		return nil
	}
	n.dropPendingLocked(k)
	if q := p.queued; q != nil && now.Sub(q.at) <= neighPendingTTL {
		return q
	}
	return nil
}

func (n *ikeNeighbors) dropPendingLocked(k ikeNeighKey) {
	delete(n.pending, k)
	n.npending.Store(int32(len(n.pending)))
}

// miss notes that k has no next hop: q (nil: nothing) waits for it, and
// ask says a request should leave now (none did for neighRetry). It fails
// when maxNeighPending other addresses are being resolved.
func (n *ikeNeighbors) miss(k ikeNeighKey, q *queuedUDP, now time.Time) (ask bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.pending[k]
	if !ok {
		if n.pending == nil {
			n.pending = make(map[ikeNeighKey]*neighPending)
		}
		if len(n.pending) >= maxNeighPending {
			for k2, p2 := range n.pending {
				if now.Sub(p2.asked) > neighPendingTTL {
					delete(n.pending, k2)
				}
			}
			n.npending.Store(int32(len(n.pending)))
			if len(n.pending) >= maxNeighPending {
				return false, fmt.Errorf("%w: %d addresses are being resolved already", ErrNoNeighbor, len(n.pending))
			}
		}
		p = &neighPending{}
		n.pending[k] = p
		n.npending.Store(int32(len(n.pending)))
	}
	if old := p.queued; q != nil && (old == nil || q.marker || !old.marker || now.Sub(old.at) > neighPendingTTL) {
		p.queued = q
	}
	if now.Sub(p.asked) < neighRetry {
		return false, nil
	}
	p.asked = now
	return true, nil
}

// learnPending learns mac for addr of vm when it is being resolved, and
// sends what waited for it. Without anything being resolved it costs one
// atomic load; it never allocates unless it sends.
func (e *Engine) learnPending(vm *vmState, addr netip.Addr, mac header.MAC) {
	if e.ikeNeigh.npending.Load() == 0 {
		return
	}
	q, learned := e.ikeNeigh.learnIfPending(keyOf(vm, addr), mac, e.now())
	if learned {
		vm.stats.NeighLearned.Add(1)
	}
	if q != nil {
		e.sendQueued(q, mac)
	}
}

// snoopNeighbor looks at a unicast frame from the wire for vm (untagged
// Ethernet, ARP or IPv6) while addresses are being resolved: an answer
// about one of them is learned. The frame itself is not changed.
func (w *worker) snoopNeighbor(vm *vmState, f []byte, etype uint16) {
	var addr netip.Addr
	var mac header.MAC
	var ok bool
	if etype == etherARP {
		addr, mac, ok = parseARPReply(vm, f)
	} else {
		addr, mac, ok = parseNeighborAdvert(vm, f)
	}
	if ok {
		w.e.learnPending(vm, addr, mac)
	}
}

const (
	arpLen          = 28 // Ethernet/IPv4 ARP (RFC 826)
	arpRequest      = 1
	arpReply        = 2
	ndSolicit       = 135 // RFC 4861 §4.3
	ndAdvert        = 136 // RFC 4861 §4.4
	ndOptSrcLL      = 1
	ndOptTgtLL      = 2
	nsLen           = 24 + 8 // NS: header, target, source link-layer option
	naMinLen        = 24
	ndHopLimit      = 255
	naSolicited     = 0x40
	arpFrameLen     = ethLen + arpLen
	nsFrameLen      = ethLen + ipv6HeaderLen + nsLen
	neighRequestMax = max(arpFrameLen, nsFrameLen)
)

// unicastMAC reports whether m can be a host's address.
func unicastMAC(m []byte) bool { return m[0]&1 == 0 && header.MAC(m) != header.MAC{} }

// parseARPReply reads f, an untagged Ethernet frame, as an ARP reply to
// vm (Ethernet, IPv4; target hardware address vm's MAC, target protocol
// address one of vm's): the sender's address and MAC.
//
//	0      2      4    5    6      8          14         18         24         28
//	| htype| ptype|hlen|plen| oper | sha      | spa      | tha      | tpa      |
func parseARPReply(vm *vmState, f []byte) (netip.Addr, header.MAC, bool) {
	if len(f) < ethLen+arpLen {
		return netip.Addr{}, header.MAC{}, false
	}
	a := f[ethLen : ethLen+arpLen]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherIPv4 || a[4] != 6 || a[5] != 4 ||
		binary.BigEndian.Uint16(a[6:8]) != arpReply || header.MAC(a[18:24]) != vm.mac || !unicastMAC(a[8:14]) ||
		!vm.owns(netip.AddrFrom4([4]byte(a[24:28]))) {
		return netip.Addr{}, header.MAC{}, false
	}
	return netip.AddrFrom4([4]byte(a[14:18])), header.MAC(a[8:14]), true
}

// parseNeighborAdvert reads f, an untagged Ethernet frame, as a solicited
// Neighbor Advertisement to one of vm's addresses that a host would
// accept (RFC 4861 §7.1.2: hop limit 255, valid ICMPv6 checksum, code 0,
// no options of length 0): its target address and link-layer address
// (the target link-layer option, else the frame's source).
//
//	IPv6 (next header 58, no extension headers) | 136 | 0 | checksum |
//	R S O reserved | target address (16) | options: type, length (units of 8), ...
func parseNeighborAdvert(vm *vmState, f []byte) (netip.Addr, header.MAC, bool) {
	if len(f) < ethLen+ipv6HeaderLen+naMinLen {
		return netip.Addr{}, header.MAC{}, false
	}
	ip := f[ethLen:]
	pl := int(binary.BigEndian.Uint16(ip[4:6]))
	if ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != ndHopLimit || pl < naMinLen || ipv6HeaderLen+pl > len(ip) {
		return netip.Addr{}, header.MAC{}, false
	}
	m := ip[ipv6HeaderLen : ipv6HeaderLen+pl]
	if m[0] != ndAdvert || m[1] != 0 || m[4]&naSolicited == 0 ||
		!vm.owns(netip.AddrFrom16([16]byte(ip[24:40]))) ||
		csum.Sum(m, csum.Pseudo(ip[8:24], ip[24:40], protoICMPv6, len(m))) != 0xffff {
		return netip.Addr{}, header.MAC{}, false
	}
	target := netip.AddrFrom16([16]byte(m[8:24]))
	if target.IsMulticast() {
		return netip.Addr{}, header.MAC{}, false
	}
	mac := header.MAC(f[6:12])
	for o := m[24:]; len(o) > 0; {
		if len(o) < 2 || o[1] == 0 || int(o[1])*8 > len(o) {
			return netip.Addr{}, header.MAC{}, false
		}
		if o[0] == ndOptTgtLL && o[1] == 1 {
			mac = header.MAC(o[2:8])
		}
		o = o[int(o[1])*8:]
	}
	if !unicastMAC(mac[:]) {
		return netip.Addr{}, header.MAC{}, false
	}
	return target.Unmap(), mac, true
}

// buildARPRequest writes into f (arpFrameLen bytes or more) a broadcast
// Ethernet frame from mac carrying an ARP request (RFC 826) for target
// from local, and returns its length.
func buildARPRequest(f []byte, mac header.MAC, local, target netip.Addr) int {
	for i := range 6 {
		f[i] = 0xff
	}
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:14], etherARP)
	a := f[ethLen : ethLen+arpLen]
	binary.BigEndian.PutUint16(a[0:2], 1) // Ethernet
	binary.BigEndian.PutUint16(a[2:4], etherIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], arpRequest)
	l, t := local.As4(), target.As4()
	copy(a[8:14], mac[:])
	copy(a[14:18], l[:])
	clear(a[18:24])
	copy(a[24:28], t[:])
	return arpFrameLen
}

// buildNeighborSolicit writes into f (nsFrameLen bytes or more) an
// Ethernet frame from mac carrying a Neighbor Solicitation (RFC 4861
// §4.3, §7.2.2) for target from local to target's solicited-node
// multicast address (RFC 4291 §2.7.1), with the source link-layer address
// option, and returns its length.
func buildNeighborSolicit(f []byte, mac header.MAC, local, target netip.Addr) int {
	t := target.As16()
	// ff02::1:ffXX:XXXX, and its MAC 33:33:ff:XX:XX:XX (RFC 2464 §7).
	snm := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]}
	f[0], f[1] = 0x33, 0x33
	copy(f[2:6], snm[12:16])
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:14], etherIPv6)
	ip := f[ethLen : ethLen+ipv6HeaderLen+nsLen]
	binary.BigEndian.PutUint32(ip[0:4], 6<<28)
	binary.BigEndian.PutUint16(ip[4:6], nsLen)
	ip[6], ip[7] = protoICMPv6, ndHopLimit
	l := local.As16()
	copy(ip[8:24], l[:])
	copy(ip[24:40], snm[:])
	m := ip[ipv6HeaderLen:]
	m[0], m[1], m[2], m[3] = ndSolicit, 0, 0, 0
	clear(m[4:8])
	copy(m[8:24], t[:])
	m[24], m[25] = ndOptSrcLL, 1
	copy(m[26:32], mac[:])
	binary.BigEndian.PutUint16(m[2:4], csum.Checksum(m, csum.Pseudo(ip[8:24], ip[24:40], protoICMPv6, len(m))))
	return nsFrameLen
}

// solicit sends, on vm's behalf from local, an ARP request or a Neighbor
// Solicitation for target.
func (e *Engine) solicit(vm *vmState, up *txPort, local, target netip.Addr) error {
	buf := make([]byte, readOff+neighRequestMax)
	f := buf[readOff:]
	var n int
	if target.Is4() {
		n = buildARPRequest(f, vm.mac, local, target)
	} else {
		n = buildNeighborSolicit(f, vm.mac, local, target)
	}
	e.ikeTxMu.Lock()
	defer e.ikeTxMu.Unlock()
	if e.ikeWorker().sendAsVM(up, vm, true, [][]byte{buf}, []int{readOff}, []int{readOff + n}) == 0 {
		return fmt.Errorf("resolve %v for VM %q: %w", target, vm.name, ErrOverlayDrop)
	}
	vm.stats.NeighRequests.Add(1)
	return nil
}

// sendQueued sends a datagram that waited for its next hop, now mac.
func (e *Engine) sendQueued(q *queuedUDP, mac header.MAC) {
	if e.now().Sub(q.at) > neighPendingTTL {
		return
	}
	vm := e.snap.Load().byKey[vmKey{q.p.Scope.VLAN, q.p.Scope.MAC}]
	up := e.cfg.Load().uplink
	if vm == nil || !vm.ike || up == nil {
		return
	}
	if err := e.sendDatagram(vm, up, mac, q.p, q.marker); err != nil {
		e.log.Debug("IKE datagram that waited for the peer's MAC not sent", "vm", vm.name, "remote", q.p.Remote, "err", err)
	}
}
