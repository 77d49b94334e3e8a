package datapath

import (
	"encoding/binary"
	"net/netip"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/offload/gso"
	"github.com/vifsec/vifsec/offload/mss"
	"github.com/vifsec/vifsec/overlay/vxlan"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

//  1. Uplink queue: a frame from the wire
//  2. VLAN from packet metadata or the frame; demultiplex by (vlan, dst mac)
//  3. IKE for a VM whose IKE the gateway runs (UDP 500, or 4500 behind the
//     non-ESP marker, to one of its addresses): to the IKE handler, never
//     the guest
//  4. ESP, plain or in UDP to 4500 (RFC 3948): SA by (vlan, dst mac, SPI);
//     replay check; decap. UDP to 4500 is ESP only when that SA exists,
//     NAT-keepalives only for a VM whose IKE the gateway runs (consumed,
//     counted); otherwise both are the guest's UDP. ARP replies and
//     Neighbor Advertisements SendIKE waits for are learned (neigh.go)
//     and go on to the guest
//  5. Inbound SPD: the clear packet must match an inbound ipsec SP that names
//     this SA (RFC 4301 §5.2); clear packets an ipsec SP covers are dropped
//  6. Deliver to the VM's VIF, untagged
//
// fromUplinkVnet takes a frame with its virtio-net header from the uplink.
// A plain frame gets its partial checksum completed (a local sender's
// offload) and goes on as usual; a TCP super-frame the kernel or NIC
// coalesced (GRO) goes to its VM whole, with its header, after the inbound
// policy check; a UDP one (a peer's train through a veth, or UDP GRO,
// DATA_VALID) is cut when vifsec consumes its datagrams (splitOwnUDP),
// else it goes whole too.
func (w *worker) fromUplinkVnet(snap *snapshot, buf []byte, off, n int, m vif.Meta) {
	h, d := offload.ParseReceivedVnetHdr(buf[off : off+n])
	if d != drop.None {
		w.e.UplinkRx.Malformed.Add(1)
		return
	}
	off, n = off+vif.VnetHdrLen, n-vif.VnetHdrLen
	if h.GSO() == offload.GSONone {
		if h.NeedsCsum() && !csum.Complete(buf[off:off+n], int(h.CsumStart), int(h.CsumOffset)) {
			w.e.UplinkRx.Malformed.Add(1)
			return
		}
		w.fromUplink(snap, buf, off, n, m)
		return
	}
	l, ld := parseL2(buf[off:off+n], m)
	if ld != drop.None || buf[off]&1 != 0 {
		w.e.UplinkRx.Malformed.Add(1)
		return
	}
	if l.inband {
		off, n = untag(buf, off, n)
		var ok bool
		if h, ok = h.Shift(-vlanTagSize); !ok {
			w.e.UplinkRx.Malformed.Add(1)
			return
		}
	}
	if h.GSO() == offload.GSOUDPL4 {
		if w.splitOwnUDP(snap, l, buf, off, n, h) {
			return
		}
		// A guest's, delivered whole: a UDP GRO super-frame (DATA_VALID)
		// needs the partial checksum a writer must give UDP GSO.
		if h, d = gso.PartialUDP(buf[off:off+n], h); d != drop.None {
			w.e.UplinkRx.Malformed.Add(1)
			return
		}
	}
	vm := snap.byKey[vmKey{l.vlan, [6]byte(buf[off : off+6])}]
	if vm == nil {
		w.e.UplinkRx.UnknownDest.Add(1)
		return
	}
	if !vm.port.vnet {
		vm.stats.Drop(drop.TooBig)
		return
	}
	if !w.inboundClear(vm, buf, off, n, l.etype) {
		return
	}
	w.flushRun() // keep the VM's frames in order
	h.Put(buf[off-vif.VnetHdrLen:])
	if w.nout == maxOut {
		w.flush()
	}
	w.out[w.nout] = outFrame{dst: vm.port, buf: buf, start: off, end: off + n, vm: vm.stats, hasHdr: true}
	w.nout++
}

// splitOwnUDP cuts a UDP GSO super-frame from the uplink (the frame
// buf[off:off+n], untagged, of VLAN l.vlan) that vifsec consumes itself
// — ESP in UDP for an inbound SA of the VM it is addressed to, or VXLAN
// or ESP in UDP to the local VTEP — into its datagrams (gso.SplitUDP) and
// handles each as a frame from the uplink: a peer's train (joinTrains) is
// decrypted in one pass, without a system call per datagram, and its
// TCP segments go on to the ingress coalescer. It reports false for any
// other super-frame (a guest's own UDP), which the caller delivers whole.
func (w *worker) splitOwnUDP(snap *snapshot, l l2, buf []byte, off, n int, h offload.VnetHdr) bool {
	if l.etype != etherIPv4 && l.etype != etherIPv6 {
		return false
	}
	ip := buf[off+ethLen : off+n]
	c := esp.Classify(ip)
	own := false
	if ov := w.cfg.overlay; ov != nil {
		dst, port, ok := udpDst(ip)
		own = ok && dst == ov.src && (port == ov.port || c.Kind == esp.KindESPInUDP)
	}
	if !own && c.Kind == esp.KindESPInUDP && w.cfg.enabled {
		if vm := snap.byKey[vmKey{l.vlan, [6]byte(buf[off : off+6])}]; vm != nil {
			s := w.e.db.Lookup(sa.Key{Scope: sa.Scope{VLAN: vm.vlan, MAC: vm.mac}, SPI: c.SPI})
			own = s != nil && s.Dir() != sa.DirOut
		}
	}
	if !own {
		return false
	}
	w.ensureSeg()
	w.flush() // frames still queued may be in the segment buffers
	ns, d := gso.SplitUDP(buf[off:off+n], h, w.seg, readOff, w.segSizes)
	if d != drop.None {
		w.e.UplinkRx.Malformed.Add(1)
		return true
	}
	m := vif.Meta{Tagged: l.tagged, VLAN: l.vlan}
	for i := range ns {
		w.fromUplink(snap, w.seg[i], readOff, w.segSizes[i], m)
	}
	w.flush()
	w.Splits++
	w.SplitSegs += uint64(ns)
	return true
}

// udpDst returns the destination address and UDP port of ip, an IPv4
// packet or an IPv6 one whose next header is UDP; ok is false for anything
// else.
func udpDst(ip []byte) (dst netip.Addr, port uint16, ok bool) {
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4 && ip[9] == header.ProtoUDP:
		l4 := int(ip[0]&0x0f) * 4
		if l4 < 20 || len(ip) < l4+8 {
			return dst, 0, false
		}
		return netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(ip[l4+2:]), true
	case len(ip) >= ipv6Len+8 && ip[0]>>4 == 6 && ip[6] == header.ProtoUDP:
		return netip.AddrFrom16([16]byte(ip[24:40])), binary.BigEndian.Uint16(ip[ipv6Len+2:]), true
	}
	return dst, 0, false
}

func (w *worker) fromUplink(snap *snapshot, buf []byte, off, n int, m vif.Meta) {
	ps := &w.e.UplinkRx
	w.rxFrames++
	if n < ethLen {
		ps.Malformed.Add(1)
		return
	}
	if ov := w.cfg.overlay; ov != nil {
		if ov.protect && w.cfg.enabled && w.fromUnderlayESP(snap, ov, buf, off, n) {
			return
		}
		r, d := vxlan.Decap(&ov.local, buf, off, n)
		switch d {
		case drop.None:
			if ov.protect && w.cfg.enabled {
				w.e.OverlayStats.Unprotected.Add(1) // no downgrade
				return
			}
			w.fromTunnel(snap, r.VNI, buf, r.Start, r.End-r.Start)
			return
		case drop.NotVXLAN, drop.NotLocal:
			// Not for our VTEP: flat traffic (or the host's own).
		default:
			w.e.OverlayStats.DecapErrors.Add(1)
			return
		}
	}
	h, d := parseL2(buf[off:off+n], m)
	if d != drop.None {
		// More than one tag: which tenant's it is cannot be told.
		ps.Malformed.Add(1)
		return
	}
	if h.inband {
		off, n = untag(buf, off, n)
	}
	f := buf[off : off+n]
	if f[0]&1 != 0 {
		w.toVMs(snap.byVLAN[h.vlan], buf, off, n, h.etype)
		return
	}
	w.toVM(snap.byKey[vmKey{h.vlan, [6]byte(f[0:6])}], buf, off, n, h.etype)
}

// fromTunnel takes an inner frame decapsulated from VXLAN: the VNI names
// the tenant, the inner destination MAC the VM.
func (w *worker) fromTunnel(snap *snapshot, vni uint32, buf []byte, off, n int) {
	// The VNI is the tenant: the inner frame has no VLAN of its own, at
	// most a priority tag.
	h, d := parseL2(buf[off:off+n], vif.Meta{})
	if d != drop.None || h.vlan != 0 {
		w.e.UplinkRx.Malformed.Add(1)
		return
	}
	if h.inband {
		off, n = untag(buf, off, n)
	}
	f := buf[off : off+n]
	if f[0]&1 != 0 {
		w.toVMs(snap.byVNI[vni], buf, off, n, h.etype)
		return
	}
	w.toVM(snap.byVNIMAC[FDBKey{vni, header.MAC(f[0:6])}], buf, off, n, h.etype)
}

// toVMs delivers a broadcast or multicast frame to each VM its inbound
// policy allows.
func (w *worker) toVMs(vms []*vmState, buf []byte, off, n int, etype uint16) {
	for _, vm := range vms {
		if w.inboundClear(vm, buf, off, n, etype) {
			w.deliver(vm, buf, off, off+n)
		}
	}
}

// toVM handles a unicast frame for vm (nil: no VM of ours): ESP is
// decapsulated and checked, clear traffic checked against the inbound SPD.
func (w *worker) toVM(vm *vmState, buf []byte, off, n int, etype uint16) {
	if vm == nil {
		w.e.UplinkRx.UnknownDest.Add(1)
		return
	}
	f := buf[off : off+n]
	if vm.ike && (etype == etherARP || etype == etherIPv6) && w.e.ikeNeigh.npending.Load() != 0 {
		w.snoopNeighbor(vm, f, etype) // an answer SendIKE waits for (neigh.go)
	}
	if etype == etherIPv4 || etype == etherIPv6 {
		c := esp.Classify(f[ethLen:])
		switch c.Kind {
		case esp.KindIKE:
			if vm.ike && w.puntIKE(vm, buf, off, &c) {
				return
			}
		case esp.KindESP:
			if w.cfg.enabled {
				w.inboundESP(vm, w.e.db.Lookup(sa.Key{Scope: sa.Scope{VLAN: vm.vlan, MAC: vm.mac}, SPI: c.SPI}), buf, off, n, netip.AddrPort{})
				return
			}
		case esp.KindESPInUDP:
			// Any UDP to 4500 whose first word is not 0 looks like ESP
			// in UDP; it is only when the VM has an inbound SA with that
			// SPI (one without Encap then refuses it: encap-mismatch).
			// Otherwise it is the guest's own UDP — its own NAT-T IPsec,
			// or any application on port 4500 — under the inbound SPD.
			if w.cfg.enabled {
				s := w.e.db.Lookup(sa.Key{Scope: sa.Scope{VLAN: vm.vlan, MAC: vm.mac}, SPI: c.SPI})
				if s != nil && s.Dir() != sa.DirOut {
					w.inboundESP(vm, s, buf, off, n, udpSource(f[ethLen:], &c))
					return
				}
				if vm.ike {
					// Port 4500 of a VM whose IKE vifsec runs is vifsec's:
					// the guest runs no NAT-T of its own to receive it.
					vm.stats.Drop(drop.NoSA)
					return
				}
			}
		case esp.KindKeepalive:
			// Keepalives are IKE's business: consumed for a VM whose IKE
			// the gateway runs, the guest's UDP otherwise.
			if vm.ike && w.cfg.enabled {
				vm.stats.Drop(drop.NATKeepalive)
				return
			}
		case esp.KindFragment:
			if w.cfg.enabled {
				vm.stats.Drop(drop.Fragment) // ESP is not reassembled
				return
			}
		}
	}
	if w.inboundClear(vm, buf, off, n, etype) {
		w.deliver(vm, buf, off, off+n)
	}
}

// udpSource is the outer source address and UDP source port of an IP
// packet esp.Classify found to be ESP in UDP.
func udpSource(pkt []byte, c *esp.Class) netip.AddrPort {
	var a netip.Addr
	if c.V6 {
		a = header.IPv6(pkt).Src()
	} else {
		a = header.IPv4(pkt).Src()
	}
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(pkt[c.UDP:]))
}

// inboundESP decapsulates ESP for vm on s, the SA its SPI names in the
// VM's scope (nil: none), and delivers what the inbound SPD accepts. from
// is where ESP in UDP came from (zero for plain ESP): once the packet
// authenticated, s learns it (sa.SA.NotePeer: a NAT rebinding is
// reported, and IKE moves the Child SAs).
func (w *worker) inboundESP(vm *vmState, s *sa.SA, buf []byte, off, n int, from netip.AddrPort) {
	if s == nil {
		vm.stats.Drop(drop.NoSA)
		return
	}
	if w.cryptOn(s) {
		// Opened with the run, in parallel (crypt.go).
		w.addOpen(vm, s, buf, off, n, from)
		return
	}
	copy(w.macs[:], buf[off:off+12])
	start, end, d := esp.Decap(s, &w.sc, buf, off+ethLen, n-ethLen)
	w.decapped(vm, s, buf, start, end, d, from, &w.macs)
}

// decapped delivers what the inbound SPD accepts of the clear packet
// buf[start:end] that Decap with s made of ESP for vm (d: dropped
// instead), from the source MAC of the ESP frame (macs[6:]).
func (w *worker) decapped(vm *vmState, s *sa.SA, buf []byte, start, end int, d drop.Reason, from netip.AddrPort, macs *[12]byte) {
	st := vm.stats
	if d != drop.None {
		st.Drop(d)
		s.Drop(d)
		return
	}
	if from.IsValid() {
		s.NotePeer(from) // authenticated, inside the replay window
	}
	if !tenant.ParseFlow(buf[start:end], &w.flow) {
		st.Drop(drop.Malformed)
		return
	}
	// RFC 4301 §5.2: the first inbound SP the clear packet matches must
	// demand ESP, and an ipsec SP it matches must name s: the first one,
	// or, while IKE rekeys a policy (a newer child's SP comes first and
	// the older child's SA still carries traffic), a later one. A
	// non-first fragment (tunnel mode) must have s for an outcome whatever
	// its ports, with no rekey allowance.
	idx, ok := w.lookup(vm, sa.DirIn)
	if !ok {
		st.Drop(drop.FragmentPolicy)
		s.Drop(drop.FragmentPolicy)
		return
	}
	if idx < 0 || vm.policies[idx].Action != tenant.ActionIPsec ||
		vm.sas[idx] != s && (w.flow.NonFirst || vm.inBySA[s].Lookup(sa.DirIn, &w.flow) < 0) {
		st.Drop(drop.PolicyMismatch)
		s.Drop(drop.PolicyMismatch)
		return
	}
	if w.flow.Proto == protoTCP {
		// The peer's SYN may offer more than fits back through ESP.
		pkt := buf[start:end]
		mss.Clamp(pkt, uint16(w.pathMTU()-espOverhead(s)-ipHeaderMin(pkt)-tcpHeaderMin))
	}
	start -= ethLen
	copy(buf[start:], vm.mac[:])
	copy(buf[start+6:], macs[6:])
	binary.BigEndian.PutUint16(buf[start+12:], etherTypeOf(buf[start+ethLen]))
	w.deliver(vm, buf, start, end)
}

// inboundClear applies to a clear, untagged frame for vm the EtherType
// allow-list, the checks of ARP and neighbour discovery (frame.go) and the
// VM's inbound SPD.
func (w *worker) inboundClear(vm *vmState, buf []byte, off, n int, etype uint16) bool {
	switch etype {
	case etherARP:
		if d := checkARP(vm, buf[off+ethLen:off+n], false); d != drop.None {
			vm.stats.Drop(d)
			return false
		}
		return true
	case etherIPv4, etherIPv6:
	default:
		vm.stats.Drop(drop.EtherType)
		return false
	}
	if !w.cfg.enabled {
		return true
	}
	if !tenant.ParseFlow(buf[off+ethLen:off+n], &w.flow) {
		vm.stats.Drop(drop.Malformed)
		return false
	}
	if tenant.IsNeighborDiscovery(&w.flow) {
		if d := checkND(vm, buf[off+ethLen:off+n], false); d != drop.None {
			vm.stats.Drop(d)
			return false
		}
		return true
	}
	idx, ok := w.lookup(vm, sa.DirIn)
	if !ok {
		vm.stats.Drop(drop.FragmentPolicy)
		return false
	}
	action := vm.def
	if idx >= 0 {
		action = vm.policies[idx].Action
	}
	switch action {
	case tenant.ActionDiscard:
		vm.stats.Drop(drop.PolicyDiscard)
		return false
	case tenant.ActionIPsec:
		// Clear traffic where the policy demands ESP: never downgrade.
		vm.stats.Drop(drop.PolicyMismatch)
		return false
	}
	return true
}

func (w *worker) deliver(vm *vmState, buf []byte, start, end int) {
	w.cryptFlush() // what the run holds came first
	if w.co != nil && vm.port.vnet && w.cfg.coalesce {
		w.coalesce(vm, buf, start, end)
		return
	}
	w.queue(vm.port, buf, start, end, vm.stats)
}
