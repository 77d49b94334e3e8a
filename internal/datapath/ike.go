package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"time"

	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
)

// IKE on a VM's behalf (ARCHITECTURE.md: who runs IKE when the hypervisor
// does not own the outer IP). The gateway's IKE engine speaks for a VM from
// the VM's own MAC and addresses:
//
//  1. Punt: on the uplink, a unicast frame to a VM with VM.IKE set that is
//     UDP to port 500, or to 4500 behind the 4-byte non-ESP marker, and
//     addressed to one of the VM's IPs, goes to the IKE handler (a copy;
//     the marker removed) and never to the guest. ESP in UDP to 4500 is
//     not IKE: it is decapsulated as ESP (worker.go: only for an SA of
//     the VM's; other UDP to 4500 is the guest's). NAT-keepalives to such
//     a VM are consumed.
//  2. Inject: SendIKE builds Ethernet (the VM's MAC, its VLAN tag) + IP
//     (the VM's address) + UDP (+ the marker when a port is 4500) and
//     writes it to the uplink, through VXLAN for a VM of an overlay tenant.
//
// The destination MAC of what SendIKE sends is, in order: the source MAC
// of the last IKE frame that peer sent for this VM (learned at punt); the
// answer to an ARP request or Neighbor Solicitation SendIKE sent from the
// VM's MAC and address for the peer's address (neigh.go), or the
// destination MAC the guest itself used toward that address, learned from
// a guest frame its SPD would protect but that had no SA yet — both only
// for an address SendIKE is resolving, so neither the wire nor the guest
// can fill the table; or the uplink neighbour table the daemon publishes
// with SetNeighbors. Learned entries expire after neighTTL (5 min) unless
// the peer's IKE refreshes them. While the peer's address resolves, the
// datagram waits (the newest per VM and peer) and leaves with the answer;
// the address is also offered on NeighborMisses. A peer off the VM's link
// does not answer for its address: its next hop must come from
// SetNeighbors or from the peer's own first IKE frame (neigh.go).
//
// What is not punted: IKE to a VM without VM.IKE (the guest may run its
// own), IKE to an address that is not the VM's, IKE from the guest (its
// frames to UDP 500/4500 are ordinary traffic under its outbound SPD, so a
// guest can send IKE from its own address when policy lets it), and IP
// fragments (IKE avoids them with RFC 7383 fragmentation). IKE between
// the hypervisor's own underlay address and a peer never needs the data
// path: the frames are addressed to the host's MAC, which is no VM's, so
// the uplink worker counts them as UplinkRx.UnknownDest and leaves them
// alone, while the host's stack, which receives its own copy (AF_PACKET
// only observes), delivers them to the daemon's UDP socket (vif.ListenUDP).
// The uplink port ignores outgoing frames (PACKET_IGNORE_OUTGOING), so
// what that socket sends is never seen here either.

// IKEPacket is one IKE datagram received or sent on a VM's behalf.
type IKEPacket struct {
	VM    string   // the VM's name (SendIKE: optional; when set it must match Scope)
	Scope sa.Scope // the VM's (vlan, mac)
	// Local is the VM's address and port, Remote the peer's.
	Local, Remote netip.AddrPort
	// Data is the IKE message, without the non-ESP marker. A received
	// packet's Data is a copy the handler owns; SendIKE does not keep it.
	Data []byte
}

// Errors of SendIKE; the error returned wraps one of them.
var (
	ErrNoVM        = errors.New("no VM with that scope")
	ErrBadAddress  = errors.New("address not usable")
	ErrNoUplink    = errors.New("no uplink")
	ErrNoNeighbor  = errors.New("next-hop MAC of the peer not known yet")
	ErrTooBig      = errors.New("IKE message too big for the uplink")
	ErrOverlayDrop = errors.New("the VXLAN underlay could not send it (see the overlay counters)")
)

// SetIKEHandler installs h (nil: none) to receive IKE addressed to VMs
// with VM.IKE. h runs on the uplink worker goroutine, so it must return
// quickly: hand the packet to a queue (it may call SendIKE, which then
// holds up the uplink for that send). Without a handler, IKE is ordinary
// traffic to the guest.
func (e *Engine) SetIKEHandler(h func(IKEPacket)) {
	if h == nil {
		e.ikeHandler.Store(nil)
		return
	}
	e.ikeHandler.Store(&h)
}

// owns reports whether a is one of vm's addresses (any, when the VM has
// none configured).
func (vm *vmState) owns(a netip.Addr) bool {
	if len(vm.ips) == 0 {
		return true
	}
	a = a.Unmap()
	for _, x := range vm.ips {
		if x.Unmap() == a {
			return true
		}
	}
	return false
}

// puntIKE hands the IKE datagram in the frame at buf[off:] (untagged;
// c describes its IP packet) to the IKE handler when it is addressed to
// one of vm's addresses, and reports whether it did. Only this, the rare
// path, allocates: the copy the handler owns.
func (w *worker) puntIKE(vm *vmState, buf []byte, off int, c *esp.Class) bool {
	h := w.e.ikeHandler.Load()
	if h == nil {
		return false
	}
	ip := buf[off+ethLen:]
	var src, dst netip.Addr
	if c.V6 {
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	} else {
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	}
	if !vm.owns(dst) {
		return false
	}
	u := ip[c.UDP:]
	p := IKEPacket{
		VM:     vm.name,
		Scope:  sa.Scope{VLAN: vm.vlan, MAC: vm.mac},
		Local:  netip.AddrPortFrom(dst, binary.BigEndian.Uint16(u[2:4])),
		Remote: netip.AddrPortFrom(src, binary.BigEndian.Uint16(u[0:2])),
		Data:   bytes.Clone(ip[c.IKE:c.End]),
	}
	vm.stats.IKEIn.Add(1)
	mac := header.MAC(buf[off+6 : off+12])
	if q := w.e.ikeNeigh.learn(keyOf(vm, src), mac, w.e.now()); q != nil {
		w.e.sendQueued(q, mac) // what waited for this peer's MAC
	}
	(*h)(p)
	return true
}

// ikeNextHop finds the MAC SendIKE sends toward k's address for k's VM:
// learned (neigh.go), or the uplink neighbour table.
func (e *Engine) ikeNextHop(k ikeNeighKey, now time.Time) (header.MAC, bool) {
	if mac, ok := e.ikeNeigh.lookup(k, now); ok {
		return mac, true
	}
	if mac, ok := e.cfg.Load().neigh[k.addr]; ok {
		return mac, true
	}
	return header.MAC{}, false
}

// SendIKE sends p on the VM's behalf: an Ethernet frame from the VM's MAC
// (802.1Q-tagged with its VLAN, or inside VXLAN for a VM of an overlay
// tenant) carrying IP from p.Local (one of the VM's addresses) to
// p.Remote, UDP between their ports, the non-ESP marker in front of Data
// when either port is 4500. IPv4 leaves without DF (IKE messages may be
// fragmented on the path) and is fragmented here when it exceeds the
// uplink's path MTU; IPv6 that does not fit is refused (ErrTooBig: use
// RFC 7383 fragmentation). To another VM on this host (in the VM's VLAN,
// owning the peer's address) it never takes the uplink: the IKE handler
// gets it in that VM's scope when the gateway runs its IKE too, else its
// guest gets the frame. The VM need not have VM.IKE: an IKE SA may
// outlive its policy long enough to send its Delete. Like a UDP socket's send, success means the
// frame was handed to the uplink, not that it arrived; when the peer's
// next-hop MAC is not known yet, it means the datagram waits while the
// peer's address resolves (neigh.go), as a host's stack holds a datagram
// while ARP runs, and is dropped if no answer comes within 3 s (the IKE
// engine retransmits). ErrNoNeighbor: too many addresses are being
// resolved at once to queue it.
//
// SendIKE is safe for concurrent use; it allocates (IKE is rare).
func (e *Engine) SendIKE(p IKEPacket) error { return e.sendUDP(p, true) }

// SendNATKeepalive sends a NAT-keepalive (RFC 3948 §2.3: one byte, 0xff,
// no marker) from local to remote on the VM's behalf, as SendIKE sends
// IKE: the side behind a NAT sends one when it has sent nothing else for
// a while (20 s is usual), so the NAT keeps its mapping for port 4500.
func (e *Engine) SendNATKeepalive(vm string, scope sa.Scope, local, remote netip.AddrPort) error {
	return e.sendUDP(IKEPacket{VM: vm, Scope: scope, Local: local, Remote: remote, Data: []byte{0xff}}, false)
}

// sendUDP is SendIKE; withMarker false leaves the non-ESP marker out.
func (e *Engine) sendUDP(p IKEPacket, withMarker bool) error {
	snap := e.snap.Load()
	vm := snap.byKey[vmKey{p.Scope.VLAN, p.Scope.MAC}]
	if vm == nil || (p.VM != "" && p.VM != vm.name) {
		return fmt.Errorf("send IKE for VM %q (%v): %w", p.VM, p.Scope, ErrNoVM)
	}
	local, remote := p.Local.Addr().Unmap(), p.Remote.Addr().Unmap()
	switch {
	case !local.IsValid() || !remote.IsValid() || local.Is4() != remote.Is4() || p.Local.Port() == 0 || p.Remote.Port() == 0:
		return fmt.Errorf("send IKE from %v to %v: %w: both need an address of one family and a port", p.Local, p.Remote, ErrBadAddress)
	case !vm.owns(local):
		return fmt.Errorf("send IKE from %v: %w: not an address of VM %q (--ip)", local, ErrBadAddress, vm.name)
	}
	if _, _, err := e.datagramLen(p, withMarker); err != nil {
		return err
	}
	if v := snap.localPeer(vm, remote); v != nil {
		return e.sendLocal(vm, v, p, withMarker)
	}
	up := e.cfg.Load().uplink
	if up == nil {
		return fmt.Errorf("send IKE for VM %q: %w", vm.name, ErrNoUplink)
	}
	now := e.now()
	k := keyOf(vm, remote)
	mac, ok := e.ikeNextHop(k, now)
	if ok {
		return e.sendDatagram(vm, up, mac, p, withMarker)
	}
	// Resolve the peer's address as the guest's stack would, and let the
	// datagram wait for the answer (neigh.go).
	select {
	case e.misses <- remote:
	default:
	}
	p.Data = bytes.Clone(p.Data)
	ask, err := e.ikeNeigh.miss(k, &queuedUDP{p: p, marker: withMarker, at: now}, now)
	if err != nil {
		return fmt.Errorf("send IKE to %v for VM %q: %w", remote, vm.name, err)
	}
	if ask {
		return e.solicit(vm, up, local, remote)
	}
	return nil
}

// localPeer returns the other VM on this host, in vm's VLAN (and VNI),
// that has addr among its configured addresses: a peer whose IKE never
// crosses the uplink. nil if there is none.
func (snap *snapshot) localPeer(vm *vmState, addr netip.Addr) *vmState {
	for _, v := range snap.byVLAN[vm.vlan] {
		if v != vm && v.vni == vm.vni && len(v.ips) > 0 && v.owns(addr) {
			return v
		}
	}
	return nil
}

// sendLocal delivers p from vm to v, a VM on this host (localPeer), as
// the uplink would have brought it back had it left: to the IKE handler
// in v's scope when the gateway runs v's IKE too (a NAT-keepalive is
// consumed), else to v's guest as a UDP frame under v's inbound SPD.
func (e *Engine) sendLocal(vm, v *vmState, p IKEPacket, withMarker bool) error {
	if v.ike {
		if h := e.ikeHandler.Load(); h != nil {
			vm.stats.IKEOut.Add(1)
			if !withMarker {
				v.stats.Drop(drop.NATKeepalive)
				return nil
			}
			v.stats.IKEIn.Add(1)
			(*h)(IKEPacket{VM: v.name, Scope: sa.Scope{VLAN: v.vlan, MAC: v.mac}, Local: p.Remote, Remote: p.Local, Data: bytes.Clone(p.Data)})
			return nil
		}
	}
	total, marker, err := e.datagramLen(p, withMarker)
	if err != nil {
		return err
	}
	local, remote := p.Local.Addr().Unmap(), p.Remote.Addr().Unmap()
	buf := make([]byte, readOff+ethLen+total+esp.Tailroom)
	f := buf[readOff:]
	copy(f[0:6], v.mac[:])
	copy(f[6:12], vm.mac[:])
	et := uint16(etherIPv4)
	if !local.Is4() {
		et = etherIPv6
	}
	binary.BigEndian.PutUint16(f[12:14], et)
	buildIKEPacket(f[ethLen:ethLen+total], local, remote, p.Local.Port(), p.Remote.Port(), marker, p.Data, uint16(e.ikeID.Add(1)))
	e.ikeTxMu.Lock()
	defer e.ikeTxMu.Unlock()
	w := e.ikeWorker()
	vm.stats.IKEOut.Add(1)
	if w.inboundClear(v, buf, readOff, ethLen+total, et) {
		w.queue(v.port, buf, readOff, readOff+ethLen+total, v.stats)
		w.flush()
	}
	return nil
}

// datagramLen checks that p fits what SendIKE can send: the IP packet's
// length and the non-ESP marker's.
func (e *Engine) datagramLen(p IKEPacket, withMarker bool) (total, marker int, err error) {
	if withMarker && (p.Local.Port() == esp.NATTPort || p.Remote.Port() == esp.NATTPort) {
		marker = esp.NonESPMarkerLen
	}
	ipLen := ipv4HeaderLen
	if !p.Local.Addr().Unmap().Is4() {
		ipLen = ipv6HeaderLen
	}
	total = ipLen + udpHeaderLen + marker + len(p.Data)
	if total > 0xffff {
		return 0, 0, fmt.Errorf("send IKE: %d-byte message: %w", len(p.Data), ErrTooBig)
	}
	if mtu := e.pathMTU(); total > mtu && ipLen == ipv6HeaderLen {
		return 0, 0, fmt.Errorf("send IKE: %d-byte IPv6 packet over the path MTU %d: %w", total, mtu, ErrTooBig)
	}
	return total, marker, nil
}

// sendDatagram sends p (checked by sendUDP) for vm to the next hop mac.
func (e *Engine) sendDatagram(vm *vmState, up *txPort, mac header.MAC, p IKEPacket, withMarker bool) error {
	total, marker, err := e.datagramLen(p, withMarker)
	if err != nil {
		return err
	}
	local, remote := p.Local.Addr().Unmap(), p.Remote.Addr().Unmap()
	buf := make([]byte, readOff+ethLen+total+esp.Tailroom)
	f := buf[readOff:]
	copy(f[0:6], mac[:])
	copy(f[6:12], vm.mac[:])
	et := uint16(etherIPv4)
	if !local.Is4() {
		et = etherIPv6
	}
	binary.BigEndian.PutUint16(f[12:14], et)
	buildIKEPacket(f[ethLen:ethLen+total], local, remote, p.Local.Port(), p.Remote.Port(), marker, p.Data, uint16(e.ikeID.Add(1)))

	e.ikeTxMu.Lock()
	defer e.ikeTxMu.Unlock()
	w := e.ikeWorker()
	frames := [][]byte{buf}
	starts, ends := []int{readOff}, []int{readOff + ethLen + total}
	if mtu := w.pathMTU(); total > mtu {
		w.ensureSeg()
		nf, d := pmtu.Fragment(f[ethLen:ethLen+total], mtu, w.seg, readOff+ethLen, w.segSizes)
		if d != drop.None {
			return fmt.Errorf("send IKE: fragmenting %d bytes for MTU %d: %w (%v)", total, mtu, ErrTooBig, d)
		}
		frames, starts, ends = w.seg[:nf], make([]int, nf), make([]int, nf)
		for i := range frames {
			copy(frames[i][readOff:], f[:ethLen])
			starts[i], ends[i] = readOff, readOff+ethLen+w.segSizes[i]
		}
	}
	if w.sendAsVM(up, vm, false, frames, starts, ends) < len(frames) {
		return fmt.Errorf("send IKE for VM %q: %w", vm.name, ErrOverlayDrop)
	}
	vm.stats.IKEOut.Add(1)
	return nil
}

// ikeWorker is SendIKE's own worker (its buffers, its output queue),
// made on first use, with the configuration as it is now (a send is its
// batch); ikeTxMu must be held.
func (e *Engine) ikeWorker() *worker {
	if e.ikeTx == nil {
		e.ikeTx = &worker{e: e, batchBufs: newBatchBufs(bufKind{frame: bufSize})}
	}
	e.ikeTx.cfg = e.cfg.Load()
	return e.ikeTx
}

// sendAsVM writes frames (each frames[i][starts[i]:ends[i]], untagged,
// with readOff bytes of headroom) to the uplink as vm's: 802.1Q-tagged
// with its VLAN, or into VXLAN for a VM of an overlay tenant (bcast: to
// every remote VTEP of its VNI). It returns how many frames left.
func (w *worker) sendAsVM(up *txPort, vm *vmState, bcast bool, frames [][]byte, starts, ends []int) int {
	ov := w.cfg.overlay
	for i, b := range frames {
		if ov != nil && vm.vni != 0 {
			w.overlayOut(ov, up, vm, bcast, b, starts[i], ends[i])
			continue
		}
		start := starts[i]
		if vm.vlan != 0 {
			start = tag(b, start, vm.vlan)
		}
		w.queue(up, b, start, ends[i], nil)
	}
	sent := w.nout
	w.flush()
	return sent
}

// buildIKEPacket writes into pkt (exactly its length) an IP packet from
// src to dst carrying UDP between sport and dport with a non-ESP marker of
// marker bytes and data: IPv4 with ID id, no DF, TTL 64; IPv6 with hop
// limit 64; the UDP checksum computed in both.
func buildIKEPacket(pkt []byte, src, dst netip.Addr, sport, dport uint16, marker int, data []byte, id uint16) {
	var hl int
	if src.Is4() {
		hl = ipv4HeaderLen
		h := pkt[:hl]
		h[0], h[1] = 0x45, 0
		binary.BigEndian.PutUint16(h[2:4], uint16(len(pkt)))
		binary.BigEndian.PutUint16(h[4:6], id)
		h[6], h[7], h[8], h[9] = 0, 0, 64, protoUDP
		h[10], h[11] = 0, 0
		a, b := src.As4(), dst.As4()
		copy(h[12:16], a[:])
		copy(h[16:20], b[:])
		binary.BigEndian.PutUint16(h[10:12], csum.Checksum(h, 0))
	} else {
		hl = ipv6HeaderLen
		h := pkt[:hl]
		binary.BigEndian.PutUint32(h[0:4], 6<<28)
		binary.BigEndian.PutUint16(h[4:6], uint16(len(pkt)-hl))
		h[6], h[7] = protoUDP, 64
		a, b := src.As16(), dst.As16()
		copy(h[8:24], a[:])
		copy(h[24:40], b[:])
	}
	u := pkt[hl:]
	binary.BigEndian.PutUint16(u[0:2], sport)
	binary.BigEndian.PutUint16(u[2:4], dport)
	binary.BigEndian.PutUint16(u[4:6], uint16(len(u)))
	u[6], u[7] = 0, 0
	clear(u[udpHeaderLen : udpHeaderLen+marker])
	copy(u[udpHeaderLen+marker:], data)
	var c uint16
	if src.Is4() {
		c = csum.Checksum(u, csum.Pseudo(pkt[12:16], pkt[16:20], protoUDP, len(u)))
	} else {
		c = csum.Checksum(u, csum.Pseudo(pkt[8:24], pkt[24:40], protoUDP, len(u)))
	}
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:8], c)
}
