package datapath

import (
	"encoding/binary"
	"time"

	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/offload/gso"
	"github.com/vifsec/vifsec/offload/mss"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

//  1. VIF queue: a frame the VM sent
//  2. Link layer (frame.go): one tag at most, the binding's VLAN or VID 0;
//     an allowed EtherType
//  3. VM identity: (vlan, src mac) must be the binding's; spoofed → drop
//  4. Source IP anti-spoofing (--ip); ARP and neighbour discovery claim
//     only the VM's addresses; a local VM is sent only what is addressed
//     to it
//  5. Outbound SPD: none → clear, discard → drop, ipsec → ESP with the SA;
//     a non-first fragment by every policy its datagram could match
//  6. Forward: to a local VM of the same VLAN, or onto the uplink (802.1Q
//     tagged when the VLAN is not 0)
func (w *worker) fromVIF(snap *snapshot, buf []byte, off, n int, m vif.Meta) {
	vm := snap.byPort[w.port.Port]
	if vm == nil {
		w.port.stats.UnknownDest.Add(1)
		return
	}
	st := vm.stats
	h, d := parseL2(buf[off:off+n], m)
	if d != drop.None {
		st.Drop(d)
		return
	}
	if h.vlan != vm.vlan && h.vlan != 0 {
		st.Drop(drop.SpoofedSource)
		return
	}
	if h.inband {
		off, n = untag(buf, off, n)
	}
	f := buf[off : off+n]
	if [6]byte(f[6:12]) != vm.mac {
		st.Drop(drop.SpoofedSource)
		return
	}
	if !etherTypeAllowed(h.etype) {
		st.Drop(drop.EtherType)
		return
	}
	dst := [6]byte(f[0:6])
	var local *vmState
	if dst[0]&1 == 0 {
		local = snap.byKey[vmKey{vm.vlan, dst}]
	}
	if h.etype == etherARP {
		if d := checkARP(vm, f[ethLen:], true); d != drop.None {
			st.Drop(d)
			return
		}
		w.forward(snap, vm, local, buf, off, off+n)
		return
	}
	ip := off + ethLen
	if !tenant.ParseFlow(buf[ip:off+n], &w.flow) {
		st.Drop(drop.Malformed)
		return
	}
	nd := tenant.IsNeighborDiscovery(&w.flow)
	if !sourceAllowed(vm, &w.flow, nd) {
		st.Drop(drop.SpoofedSource)
		return
	}
	if nd {
		if d := checkND(vm, buf[ip:off+n], true); d != drop.None {
			st.Drop(d)
			return
		}
	}
	if local != nil && !local.accepts(w.flow.Dst) {
		st.Drop(drop.WrongDest)
		return
	}
	if nd || !w.cfg.enabled {
		w.forward(snap, vm, local, buf, off, off+n)
		return
	}
	var idx int
	if w.fragmenting {
		// A fragment vifsec cut from a datagram it classified: the
		// datagram's policy, whose ports a non-first fragment lacks.
		idx = w.fragPolicy
	} else {
		var ok bool
		if idx, ok = w.lookup(vm, sa.DirOut); !ok {
			st.Drop(drop.FragmentPolicy)
			return
		}
	}
	w.fragPolicy = idx
	action := vm.def
	if idx >= 0 {
		action = vm.policies[idx].Action
	}
	switch action {
	case tenant.ActionDiscard:
		st.Drop(drop.PolicyDiscard)
		return
	case tenant.ActionIPsec:
	default:
		if local == nil && w.cfg.overlay != nil {
			// Clear, but into VXLAN (and maybe underlay ESP): the path
			// MTU is smaller than the VM's link.
			mtu := w.pathMTU()
			pkt := buf[ip : off+n]
			if w.flow.Proto == protoTCP {
				mss.Clamp(pkt, uint16(mtu-ipHeaderMin(pkt)-tcpHeaderMin))
			}
			if len(pkt) > mtu {
				w.oversized(snap, vm, nil, buf, off, n, m, mtu)
				return
			}
		}
		w.forward(snap, vm, local, buf, off, off+n)
		return
	}
	if local != nil {
		// Never leaves the host: the wire ESP protects is not crossed.
		w.forward(snap, vm, local, buf, off, off+n)
		return
	}
	s := vm.sas[idx]
	if s == nil || s.Dir() == sa.DirIn {
		// No SA yet (IKE has not installed it): discarded, as ONTAP does.
		// The frame tells where the guest sends traffic for that peer,
		// which is where IKE on its behalf goes too.
		if vm.ike && dst[0]&1 == 0 {
			w.e.learnPending(vm, w.flow.Dst, dst)
		}
		st.Drop(drop.NoSA)
		return
	}
	// Path MTU: what ESP (and VXLAN) add must still fit the uplink.
	mtu := w.pathMTU() - espOverhead(s)
	pkt := buf[ip : off+n]
	if w.flow.Proto == protoTCP {
		mss.Clamp(pkt, uint16(mtu-ipHeaderMin(pkt)-tcpHeaderMin))
	}
	if len(pkt) > mtu {
		w.oversized(snap, vm, s, buf, off, n, m, mtu)
		return
	}
	copy(w.macs[:], f[0:12])
	if w.cryptOn(s) {
		// Sealed with the run, in parallel (crypt.go).
		w.addSeal(snap, vm, s, buf, ip, n-ethLen, &w.macs)
		return
	}
	start, end, d := esp.Encap(s, &w.sc, buf, ip, n-ethLen)
	w.sealed(snap, vm, s, buf, start, end, d, &w.macs)
}

// sealed forwards vm's packet that ESP with s made into buf[start:end]
// (d: dropped instead) in a frame from the MACs the VM's frame had
// (macs: destination, source).
func (w *worker) sealed(snap *snapshot, vm *vmState, s *sa.SA, buf []byte, start, end int, d drop.Reason, macs *[12]byte) {
	if d != drop.None {
		vm.stats.Drop(d)
		s.Drop(d)
		return
	}
	start -= ethLen
	copy(buf[start:], macs[:])
	binary.BigEndian.PutUint16(buf[start+12:], etherTypeOf(buf[start+ethLen]))
	w.forward(snap, vm, nil, buf, start, end)
}

// fromVnet takes a frame with its virtio-net header from a VM: a plain
// frame gets its partial checksum completed; a TSO/USO super-frame is cut
// into segments that fit the uplink after ESP, each then handled as a
// frame of its own.
func (w *worker) fromVnet(snap *snapshot, buf []byte, off, n int, m vif.Meta) {
	vm := snap.byPort[w.port.Port]
	if vm == nil {
		w.port.stats.UnknownDest.Add(1)
		return
	}
	h, d := offload.ParseVnetHdr(buf[off : off+n])
	if d != drop.None {
		vm.stats.Drop(d)
		return
	}
	off, n = off+vif.VnetHdrLen, n-vif.VnetHdrLen
	frame := buf[off : off+n]
	if h.GSO() == offload.GSONone {
		if h.NeedsCsum() && !csum.Complete(frame, int(h.CsumStart), int(h.CsumOffset)) {
			vm.stats.Drop(drop.Malformed)
			return
		}
		w.fromVIF(snap, buf, off, n, m)
		return
	}
	// The segments must fit what the flow's policy adds: find it on the
	// super-frame's headers (they are the segments' headers).
	mtu := w.mtuFor(vm, frame)
	w.ensureSeg()
	ns, d := gso.Segment(frame, h, mtu, w.seg, readOff, w.segSizes)
	if d != drop.None {
		if d == drop.TooBig {
			// A USO datagram that cannot be cut: tell the guest the MTU.
			w.tooBig(vm, buf, off, n, mtu)
		}
		vm.stats.Drop(d)
		return
	}
	// The segments' buffers are reused by the next super-frame: send what
	// is queued now.
	w.flush()
	for i := 0; i < ns; i++ {
		w.fromVIF(snap, w.seg[i], readOff, w.segSizes[i], m)
	}
	w.cryptFlush()
	w.joinTrains()
	w.flush()
}

// joinTrains replaces the first run of queued uplink frames that are UDP
// datagrams of one flow — ESP in UDP to port 4500 or VXLAN to the overlay's
// port, as one super-frame's segments become after ESP — with one UDP GSO
// super-frame (gso.Train) when the uplink takes virtio-net headers and
// UDP GSO super-frames (UplinkOptions.UDPGSO): one write and one trip
// through the kernel instead of one per datagram. The kernel (in software,
// after the qdisc), the NIC or the receiver behind a veth cuts it again. Runs of
// other frames, or of one datagram, stay as they are. The caller flushes
// before the next super-frame: the train's buffer is the worker's.
func (w *worker) joinTrains() {
	up := w.cfg.uplink
	if up == nil || !up.udpGSO || w.nout < 2 || !w.cfg.udpGSO {
		return
	}
	var vxPort uint16
	if ov := w.cfg.overlay; ov != nil {
		vxPort = ov.port
	}
	for i := 0; i+1 < w.nout; i++ {
		o := &w.out[i]
		if o.dst != up || o.hasHdr {
			continue
		}
		if p, ok := gso.TrainPort(o.buf[o.start:o.end]); !ok || p != esp.NATTPort && (vxPort == 0 || p != vxPort) {
			continue
		}
		if w.trainBuf == nil {
			// The first train of this worker: most VMs' never send one.
			w.trainBuf = make([]byte, gsoBufSize)
		}
		if !w.train.Start(w.trainBuf, readOff, o.buf[o.start:o.end]) {
			continue
		}
		k := i + 1
		for ; k < w.nout; k++ {
			q := &w.out[k]
			if q.dst != up || q.hasHdr || !w.train.Append(q.buf[q.start:q.end]) {
				break
			}
		}
		start, end, h := w.train.Finish()
		if k-i < 2 {
			continue
		}
		h.Put(w.trainBuf[start-vif.VnetHdrLen:])
		w.out[i] = outFrame{dst: up, buf: w.trainBuf, start: start, end: end, hasHdr: true}
		n := copy(w.out[i+1:], w.out[k:w.nout])
		clear(w.out[i+1+n : w.nout])
		w.nout = i + 1 + n
		w.Trains++
		w.TrainSegs += uint64(k - i)
		return // one train buffer
	}
}

// mtuFor is the largest IP packet of the flow in frame (an Ethernet frame,
// possibly tagged) that still fits the uplink once its policy's ESP is
// added.
func (w *worker) mtuFor(vm *vmState, frame []byte) int {
	mtu := w.pathMTU()
	l2 := l2Len(frame)
	if len(frame) < l2 || !w.cfg.enabled || !tenant.ParseFlow(frame[l2:], &w.flow) {
		return mtu
	}
	if idx := vm.spd.Lookup(sa.DirOut, &w.flow); idx >= 0 && vm.policies[idx].Action == tenant.ActionIPsec {
		if s := vm.sas[idx]; s != nil {
			return mtu - espOverhead(s)
		}
	}
	return mtu
}

// tooBig answers a VM's packet that does not fit (the IP packet in the
// frame buf[off:off+n]) with ICMP fragmentation-needed or ICMPv6
// packet-too-big carrying mtu, as a router on the path would, rate-limited.
func (w *worker) tooBig(vm *vmState, buf []byte, off, n, mtu int) {
	if w.icmpBuf == nil || !vm.icmp.Allow(time.Now()) {
		return
	}
	l2 := l2Len(buf[off : off+n])
	b := w.icmpBuf
	ipAt := readOff + ethLen
	ln := pmtu.ICMPTooBig(b[ipAt:], buf[off+l2:off+n], mtu)
	if ln == 0 {
		return
	}
	copy(b[readOff:readOff+6], buf[off+6:off+12]) // to the VM
	copy(b[readOff+6:readOff+12], buf[off:off+6]) // from where it sent
	binary.BigEndian.PutUint16(b[readOff+12:], etherTypeOf(b[ipAt]))
	// The error is sent at once: icmpBuf is reused by the next one.
	w.queue(vm.port, b, readOff, ipAt+ln, vm.stats)
	w.flush()
}

// oversized handles a VM's packet (frame buf[off:off+n], untagged) that
// will not fit the uplink after ESP (s, or nil for clear traffic into the
// overlay): IPv4 without DF, clear or on a tunnel-mode SA, is fragmented
// first (each fragment then gets its own ESP); everything else
// — IPv6, DF set, transport mode (RFC 4301 §7: whole datagrams only) — is
// dropped and answered with ICMP too-big carrying mtu.
func (w *worker) oversized(snap *snapshot, vm *vmState, s *sa.SA, buf []byte, off, n int, m vif.Meta, mtu int) {
	w.cryptFlush() // packets of the run may be in w.seg
	pkt := buf[off+ethLen : off+n]
	if pkt[0]>>4 == 4 && pkt[6]&0x40 == 0 && (s == nil || s.Mode() == sa.ModeTunnel) && w.port.vnet && !w.fragmenting {
		w.ensureSeg()
		nf, d := pmtu.Fragment(pkt, mtu, w.seg, readOff+ethLen, w.segSizes)
		if d == drop.None {
			w.flush() // w.seg's previous contents are queued frames
			w.fragmenting = true
			for i := 0; i < nf; i++ {
				copy(w.seg[i][readOff:readOff+ethLen], buf[off:off+ethLen])
				w.fromVIF(snap, w.seg[i], readOff, ethLen+w.segSizes[i], m)
			}
			w.fragmenting = false
			w.flush()
			return
		}
	}
	vm.stats.Drop(drop.TooBig)
	w.tooBig(vm, buf, off, n, mtu)
}

// sourceAllowed applies --ip: without addresses any source is allowed;
// otherwise the source must be one of them, or link-local/unspecified for
// traffic that stays on the link.
func sourceAllowed(vm *vmState, f *tenant.Flow, nd bool) bool {
	if len(vm.ips) == 0 {
		return true
	}
	for _, a := range vm.ips {
		if a == f.Src {
			return true
		}
	}
	// Link-scope IPv6 (ND, MLD, router solicitation) from the VM's
	// link-local or the unspecified address never leaves the segment.
	return (f.Src.IsUnspecified() || f.Src.IsLinkLocalUnicast()) &&
		(nd || f.Dst.IsLinkLocalUnicast() || f.Dst.IsLinkLocalMulticast() || f.Dst.IsInterfaceLocalMulticast())
}

// forward sends the VM's frame buf[start:end]: to the local VM it is
// addressed to, or to every other VM of the VLAN and the uplink when it is
// broadcast or multicast, or else to the uplink.
func (w *worker) forward(snap *snapshot, from, local *vmState, buf []byte, start, end int) {
	w.sent.add(&from.stats.PacketsOut, &from.stats.BytesOut, end-start)
	if local != nil {
		w.queue(local.port, buf, start, end, local.stats)
		return
	}
	bcast := buf[start]&1 != 0
	if bcast {
		for _, v := range snap.byVLAN[from.vlan] {
			if v != from {
				w.queue(v.port, buf, start, end, v.stats)
			}
		}
	}
	up := w.cfg.uplink
	if up == nil {
		return
	}
	if ov := w.cfg.overlay; ov != nil && from.vni != 0 {
		w.overlayOut(ov, up, from, bcast, buf, start, end)
		return
	}
	if bcast && from.vlan != 0 {
		// The local copies above stay untagged; tag a copy.
		if buf = w.copySpare(buf[start:end]); buf == nil {
			return
		}
		start, end = readOff, readOff+end-start
	}
	if from.vlan != 0 {
		start = tag(buf, start, from.vlan)
	}
	w.queue(up, buf, start, end, nil)
}

// overlayOut sends a VM's frame into VXLAN: unicast to the remote VTEP the
// FDB names for its destination, broadcast and multicast to every remote
// VTEP of the VNI, each from its own copy (encapsulation writes into the
// headroom, which local copies and other remotes must not share).
func (w *worker) overlayOut(ov *overlayState, up *txPort, from *vmState, bcast bool, buf []byte, start, end int) {
	if !bcast {
		remote, ok := ov.fdb[FDBKey{from.vni, header.MAC(buf[start : start+6])}]
		if !ok {
			w.e.OverlayStats.NoRemote.Add(1)
			return
		}
		w.vxlanOut(ov, up, from, remote, buf, start, end)
		return
	}
	for _, remote := range ov.remotes[from.vni] {
		b := w.copySpare(buf[start:end])
		if b == nil {
			return
		}
		w.vxlanOut(ov, up, from, remote, b, readOff, readOff+end-start)
	}
}

// tag inserts an 802.1Q header into the frame at buf[start:], using the
// headroom before it, and returns the frame's new start.
func tag(buf []byte, start int, vlan uint16) int {
	start -= vlanTagSize
	copy(buf[start:start+12], buf[start+vlanTagSize:start+vlanTagSize+12])
	binary.BigEndian.PutUint16(buf[start+12:], etherVLAN)
	binary.BigEndian.PutUint16(buf[start+14:], vlan&0x0fff)
	return start
}

// copySpare copies frame into one of the worker's spare buffers, at the
// read offset so it has headroom; nil when the spares are used up.
func (w *worker) copySpare(frame []byte) []byte {
	if w.nsp == len(w.spare) || len(frame)+readOff > len(w.spare[w.nsp]) {
		return nil
	}
	b := w.spare[w.nsp]
	w.nsp++
	copy(b[readOff:], frame)
	return b
}
