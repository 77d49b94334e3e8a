package datapath

import (
	"encoding/binary"
	"errors"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"sync/atomic"
	"time"

	"github.com/vifsec/vifsec/offload"
	"github.com/vifsec/vifsec/offload/csum"
	"github.com/vifsec/vifsec/offload/gso"
	"github.com/vifsec/vifsec/offload/mss"
	"github.com/vifsec/vifsec/offload/pmtu"
	"github.com/vifsec/vifsec/overlay/vxlan"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

// Frame geometry: frames are read at readOff so ESP, an 802.1Q tag and
// VXLAN can be written in front in place. A buffer for one frame holds
// frameBufSize(MTU) bytes: never less than bufSize (a 1500-byte MTU frame
// plus ESP's tailroom with margin), more on a jumbo uplink. Ports with
// virtio-net headers read into gsoBufSize buffers (a 64 KiB super-frame,
// so any MTU); a port without them reads frames up to the uplink's MTU as
// it was when the port's worker started, and counts bigger ones as
// truncated.
//
// The most written in front of a VM's frame is ESP inside VXLAN inside
// underlay ESP toward a virtio-net uplink: the VM's ESP (esp.MaxPrefix,
// outer IPv6 + UDP + ESP + IV; its Ethernet header is rebuilt in the
// frame's own), VXLAN (vxlan.Headroom, outer Ethernet, tag, IPv6, UDP,
// VXLAN), the underlay's ESP (esp.MaxPrefix again) and the virtio-net
// header (TestHeadroomWorstCase sends such a frame).
const (
	readOff = max(esp.Headroom+vxlan.Headroom, 2*esp.MaxPrefix+vxlan.Headroom+vif.VnetHdrLen)
	bufSize = 4096
	maxOut  = 4 * vif.MaxBatch

	// Ports with virtio-net headers: batches of gsoBatch buffers big
	// enough for a 64 KiB super-frame, and up to maxSegs segments each
	// (64 KiB at the smallest useful MTU, 1280).
	gsoBatch   = 8
	gsoBufSize = readOff + vif.VnetHdrLen + 65535 + ethLen + 2*vlanTagSize + esp.Tailroom
	maxSegs    = 64
	// maxSpare bounds broadcast copies per batch.
	maxSpare = 8

	// frameExtra is what a frame buffer holds besides the IP packet: the
	// headroom, a virtio-net header, Ethernet with two tags, ESP's
	// tailroom.
	frameExtra = readOff + vif.VnetHdrLen + ethLen + 2*vlanTagSize + esp.Tailroom
)

// worker owns one port's receive loop and everything it needs per packet.
// Nothing in it is shared with other workers.
type worker struct {
	e      *Engine
	port   *txPort
	rx     vif.Port // the queue of port this worker reads
	seq    uint32   // picks the queue it writes on, of ports with several
	uplink bool
	done   chan struct{}

	bufs  [][]byte
	sizes []int
	meta  []vif.Meta
	spare [][]byte // copies for frames that go to several ports in different forms
	nsp   int
	sc    sa.Scratch
	flow  tenant.Flow
	macs  [12]byte

	out   [maxOut]outFrame
	nout  int
	group [][]byte

	// VIF ports with virtio-net headers only: segments of a super-frame
	// (or fragments of a packet), and room to build an ICMP error.
	seg         [][]byte
	segSizes    []int
	icmpBuf     []byte
	fragmenting bool // w.seg holds fragments being sent
	fragPolicy  int  // while fragmenting: the datagram's policy (-1: default)

	// batches counts batch starts and ends: odd while one runs.
	batches atomic.Uint64

	// Uplink worker only: the pending ingress-coalescing run.
	co coalescer
	// Coalesced counts segments merged into super-frames (read by tests).
	Coalesced uint64
}

type outFrame struct {
	dst        *txPort
	buf        []byte
	start, end int
	vm         *VMStats // counted as delivered to this VM (nil: uplink)
	hasHdr     bool     // a virtio-net header is already in the headroom
}

// frameBufSize is the size of a buffer for one frame carrying an IP
// packet of up to mtu bytes (frameExtra more, at least bufSize): an MTU of
// 1500 keeps bufSize, a jumbo MTU gets what it needs.
func frameBufSize(mtu int) int { return max(bufSize, frameExtra+mtu) }

// newWorker makes p's worker. Its frame buffers (reads without virtio-net
// headers, broadcast copies) are sized for the uplink's MTU at this
// moment; segment buffers follow the uplink's MTU as it changes
// (ensureSeg).
func newWorker(e *Engine, p *txPort, uplink bool) *worker {
	w := &worker{e: e, port: p, rx: p.Port, seq: e.workerSeq.Add(1) - 1, uplink: uplink, done: make(chan struct{})}
	frame := frameBufSize(int(e.uplinkMTU.Load()))
	nbuf, size := vif.MaxBatch, frame
	if p.vnet && uplink {
		// The uplink is the busiest port: full batches, each buffer big
		// enough for a coalesced (GRO) super-frame.
		size = gsoBufSize
	} else if p.vnet {
		// A port with virtio-net headers hands over super-frames of up to
		// 64 KiB. Pages of a buffer the kernel never writes stay
		// untouched, so an idle VM costs little resident memory.
		nbuf, size = gsoBatch, gsoBufSize
		w.icmpBuf = make([]byte, bufSize)
	}
	w.bufs = make([][]byte, nbuf)
	for i := range w.bufs {
		w.bufs[i] = make([]byte, size)
	}
	// Spares hold tagged copies of broadcast frames a VM sends on a VLAN:
	// a few per batch is plenty (beyond that, broadcasts are dropped).
	w.spare = make([][]byte, maxSpare)
	for i := range w.spare {
		w.spare[i] = make([]byte, frame)
	}
	if uplink {
		w.co.buf = make([]byte, gsoBufSize)
	}
	w.sizes = make([]int, nbuf)
	w.meta = make([]vif.Meta, nbuf)
	w.group = make([][]byte, 0, maxOut)
	return w
}

func (w *worker) run() {
	defer w.e.wg.Done()
	defer close(w.done)
	for {
		n, err := w.rx.ReadBatch(w.bufs, w.sizes, w.meta, readOff)
		if err != nil {
			if !errors.Is(err, vif.ErrClosed) {
				w.e.log.Warn("port read failed; worker stops", "port", w.port.Name(), "err", err)
				w.port.down.Do(func() {
					if f := w.e.OnPortDown; f != nil {
						f(w.port.Port, err)
					}
				})
			}
			return
		}
		w.batch(n)
	}
}

// batch processes n frames just read and sends what they produced.
func (w *worker) batch(n int) {
	w.batches.Add(1) // odd: in a batch (Engine.Quiesce)
	defer w.batches.Add(1)
	snap := w.e.snap.Load()
	for i := 0; i < n; i++ {
		switch {
		case w.uplink && w.port.vnet:
			w.fromUplinkVnet(snap, w.bufs[i], readOff, w.sizes[i], w.meta[i])
		case w.uplink:
			w.fromUplink(snap, w.bufs[i], readOff, w.sizes[i], w.meta[i])
		case w.port.vnet:
			w.fromVnet(snap, w.bufs[i], readOff, w.sizes[i], w.meta[i])
		default:
			w.fromVIF(snap, w.bufs[i], readOff, w.sizes[i], w.meta[i])
		}
	}
	w.flushRun()
	w.flush()
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
	w.flush()
}

// ensureSeg allocates the segment buffers on a VIF worker's first
// super-frame or fragmentation (most VMs' workers never need them), each
// big enough for a segment of the uplink's MTU; it allocates them again,
// bigger, when the uplink's MTU has grown since. Buffers a frame still
// queued refers to stay valid: they are replaced, never reused.
func (w *worker) ensureSeg() {
	size := frameBufSize(int(w.e.uplinkMTU.Load()))
	if w.seg != nil && len(w.seg[0]) >= size {
		return
	}
	w.seg = make([][]byte, maxSegs)
	for i := range w.seg {
		w.seg[i] = make([]byte, size)
	}
	w.segSizes = make([]int, maxSegs)
}

// pathMTU is the largest IP packet a VM may hand over before ESP: the
// uplink MTU, less VXLAN's encapsulation when the overlay is on.
func (w *worker) pathMTU() int { return w.e.pathMTU() }

// mtuFor is the largest IP packet of the flow in frame (an Ethernet frame,
// possibly tagged) that still fits the uplink once its policy's ESP is
// added.
func (w *worker) mtuFor(vm *vmState, frame []byte) int {
	mtu := w.pathMTU()
	l2 := l2Len(frame)
	if len(frame) < l2 || !w.e.enabled.Load() || !tenant.ParseFlow(frame[l2:], &w.flow) {
		return mtu
	}
	if idx := vm.spd.Lookup(sa.DirOut, &w.flow); idx >= 0 && vm.policies[idx].Action == tenant.ActionIPsec {
		if s := vm.sas[idx]; s != nil {
			return mtu - espOverhead(s)
		}
	}
	return mtu
}

// espOverhead is the most s adds to an IP packet: ESP framing plus the
// outer header in tunnel mode.
func espOverhead(s *sa.SA) int {
	o := s.Overhead()
	if s.Mode() == sa.ModeTunnel {
		if s.Dst().Unmap().Is4() {
			o += 20
		} else {
			o += 40
		}
	}
	return o
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

// ipHeaderMin is the fixed IP header length of pkt's family.
func ipHeaderMin(pkt []byte) int {
	if pkt[0]>>4 == 6 {
		return ipv6HeaderLen
	}
	return ipv4HeaderLen
}

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
	if nd || !w.e.enabled.Load() {
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
		if local == nil && w.e.overlay.Load() != nil {
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
	start, end, d := esp.Encap(s, &w.sc, buf, ip, n-ethLen)
	if d != drop.None {
		st.Drop(d)
		s.Drop(d)
		return
	}
	start -= ethLen
	copy(buf[start:], w.macs[:])
	binary.BigEndian.PutUint16(buf[start+12:], etherTypeOf(buf[start+ethLen]))
	w.forward(snap, vm, nil, buf, start, end)
}

// lookup finds vm's policy for w.flow in direction dir (-1: the default
// action). A non-first fragment is classified only when every policy its
// datagram could match has the same outcome (tenant's LookupFragment);
// otherwise ok is false and the fragment must be dropped.
func (w *worker) lookup(vm *vmState, dir sa.Direction) (idx int, ok bool) {
	if !w.flow.NonFirst {
		return vm.spd.Lookup(dir, &w.flow), true
	}
	return vm.spd.LookupFragment(dir, &w.flow, vm.sameOutcome)
}

// sameOutcome reports whether vm's policies i and j (-1: the default
// action) do the same with a packet: the same action, and for ipsec the
// same SA.
func (vm *vmState) sameOutcome(i, j int) bool {
	a, s := vm.outcome(i)
	b, t := vm.outcome(j)
	return a == b && s == t
}

func (vm *vmState) outcome(i int) (tenant.Action, *sa.SA) {
	if i < 0 {
		return vm.def, nil
	}
	a := vm.policies[i].Action
	if a != tenant.ActionIPsec || i >= len(vm.sas) {
		return a, nil
	}
	return a, vm.sas[i]
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
	from.stats.PacketsOut.Add(1)
	from.stats.BytesOut.Add(uint64(end - start))
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
	up := w.e.uplink.Load()
	if up == nil {
		return
	}
	if ov := w.e.overlay.Load(); ov != nil && from.vni != 0 {
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

// etherTypeOf returns the EtherType for an IP packet's first byte.
func etherTypeOf(b byte) uint16 {
	if b>>4 == 6 {
		return etherIPv6
	}
	return etherIPv4
}

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
// offload) and goes on as usual; a super-frame the kernel or NIC coalesced
// (GRO) is clear TCP by construction — ESP and VXLAN are not coalesced — and
// goes to its VM whole, with its header, after the inbound policy check.
func (w *worker) fromUplinkVnet(snap *snapshot, buf []byte, off, n int, m vif.Meta) {
	h, d := offload.ParseVnetHdr(buf[off : off+n])
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

func (w *worker) fromUplink(snap *snapshot, buf []byte, off, n int, m vif.Meta) {
	ps := &w.e.UplinkRx
	ps.Frames.Add(1)
	if n < ethLen {
		ps.Malformed.Add(1)
		return
	}
	if ov := w.e.overlay.Load(); ov != nil {
		if ov.protect && w.e.enabled.Load() && w.fromUnderlayESP(snap, ov, buf, off, n) {
			return
		}
		r, d := vxlan.Decap(&ov.local, buf, off, n)
		switch d {
		case drop.None:
			if ov.protect && w.e.enabled.Load() {
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
			if w.e.enabled.Load() {
				w.inboundESP(vm, w.e.db.Lookup(sa.Key{Scope: sa.Scope{VLAN: vm.vlan, MAC: vm.mac}, SPI: c.SPI}), buf, off, n)
				return
			}
		case esp.KindESPInUDP:
			// Any UDP to 4500 whose first word is not 0 looks like ESP
			// in UDP; it is only when the VM has an inbound SA with that
			// SPI (one without Encap then refuses it: encap-mismatch).
			// Otherwise it is the guest's own UDP — its own NAT-T IPsec,
			// or any application on port 4500 — under the inbound SPD.
			if w.e.enabled.Load() {
				s := w.e.db.Lookup(sa.Key{Scope: sa.Scope{VLAN: vm.vlan, MAC: vm.mac}, SPI: c.SPI})
				if s != nil && s.Dir() != sa.DirOut {
					w.inboundESP(vm, s, buf, off, n)
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
			if vm.ike && w.e.enabled.Load() {
				vm.stats.Drop(drop.NATKeepalive)
				return
			}
		case esp.KindFragment:
			if w.e.enabled.Load() {
				vm.stats.Drop(drop.Fragment) // ESP is not reassembled
				return
			}
		}
	}
	if w.inboundClear(vm, buf, off, n, etype) {
		w.deliver(vm, buf, off, off+n)
	}
}

// inboundESP decapsulates ESP for vm on s, the SA its SPI names in the
// VM's scope (nil: none), and delivers what the inbound SPD accepts.
func (w *worker) inboundESP(vm *vmState, s *sa.SA, buf []byte, off, n int) {
	st := vm.stats
	if s == nil {
		st.Drop(drop.NoSA)
		return
	}
	copy(w.macs[6:], buf[off+6:off+12])
	start, end, d := esp.Decap(s, &w.sc, buf, off+ethLen, n-ethLen)
	if d != drop.None {
		st.Drop(d)
		s.Drop(d)
		return
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
	copy(buf[start+6:], w.macs[6:])
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
	if !w.e.enabled.Load() {
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
	if w.co.buf != nil && vm.port.vnet && w.e.coalesce.Load() {
		w.coalesce(vm, buf, start, end)
		return
	}
	w.queue(vm.port, buf, start, end, vm.stats)
}

// queue sends the frame buf[start:end] to dst at the end of the batch.
// The frame must have vif.VnetHdrLen bytes of headroom in buf, where a
// virtio-net header is written for ports that take one.
func (w *worker) queue(dst *txPort, buf []byte, start, end int, vm *VMStats) {
	if w.nout == maxOut {
		w.flush()
	}
	w.out[w.nout] = outFrame{dst: dst, buf: buf, start: start, end: end, vm: vm}
	w.nout++
}

// flush writes the queued frames, one WriteBatch per destination port.
func (w *worker) flush() {
	for i := 0; i < w.nout; i++ {
		dst := w.out[i].dst
		if dst == nil {
			continue
		}
		w.group = w.group[:0]
		for j := i; j < w.nout; j++ {
			o := &w.out[j]
			if o.dst != dst {
				continue
			}
			start := o.start
			if dst.vnet {
				start -= vif.VnetHdrLen
				if !o.hasHdr {
					// A plain frame: no GSO, checksums complete (the
					// guest verifies them), flags 0.
					clear(o.buf[start:o.start])
				}
			}
			w.group = append(w.group, o.buf[start:o.end])
			if o.vm != nil {
				o.vm.PacketsIn.Add(1)
				o.vm.BytesIn.Add(uint64(o.end - o.start))
			}
			o.dst = nil
		}
		dst.writeFrom(w.seq, w.group)
	}
	clear(w.out[:w.nout])
	w.nout = 0
	w.nsp = 0
}
