package datapath

import (
	"encoding/binary"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"slices"

	"github.com/vifsec/vifsec/overlay/entropy"
	"github.com/vifsec/vifsec/overlay/vxlan"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/sa/esp"
)

// Overlay is the VXLAN underlay of the uplink (RFC 7348): VM frames — ESP
// already applied, so the underlay sees VXLAN whose payload is ESP — leave
// inside VXLAN with the VM's tenant VNI, toward the remote VTEP the FDB
// names for the destination MAC; VXLAN arriving for the local VTEP is
// decapsulated and delivered by (VNI, inner destination MAC).
type Overlay struct {
	Local     netip.Addr // the local VTEP (underlay source) address
	Port      uint16     // UDP port; 0 = 4789
	UplinkMAC header.MAC // outer source MAC
	// FDB maps (VNI, inner MAC) to the remote VTEP behind which that MAC
	// lives. Broadcast and multicast go to every remote VTEP of the VNI
	// (head-end replication).
	FDB map[FDBKey]netip.Addr
	// Key keys the source-port hash (per host, so outsiders cannot steer
	// ECMP buckets).
	Key [16]byte
	// ProtectUnderlay puts ESP around the VXLAN packet, between the VTEPs,
	// with the tenant's underlay SA for the remote VTEP (instead of, or
	// besides, the VMs' own ESP inside). VXLAN that arrives unprotected is
	// then dropped: no downgrade.
	ProtectUnderlay bool
	// Underlay lists the underlay SAs: outbound ones have Src = Local and
	// are used toward their Dst; inbound ones are found by SPI in the zero
	// scope and must carry their tenant's VNI from their Src.
	Underlay []UnderlaySA
}

// UnderlaySA is an SA protecting one tenant's VXLAN between two VTEPs.
type UnderlaySA struct {
	VNI uint32
	SA  *sa.SA
}

// underlayKey is the outbound underlay SA's key: tenant and remote VTEP.
type underlayKey struct {
	vni    uint32
	remote netip.Addr
}

// FDBKey is an FDB entry's key.
type FDBKey struct {
	VNI uint32
	MAC header.MAC
}

// overlayState is an Overlay compiled for the workers: immutable.
type overlayState struct {
	local   vxlan.Local
	src     netip.Addr
	port    uint16
	srcMAC  [6]byte
	fdb     map[FDBKey]netip.Addr
	remotes map[uint32][]netip.Addr // per VNI, for broadcast
	hasher  *entropy.Hasher

	protect    bool
	underOut   map[underlayKey]*sa.SA
	underIn    map[*sa.SA]underlayKey // inbound SA → the VNI and remote it may carry
	underExtra int                    // the most an outbound underlay SA adds
}

func compileOverlay(o *Overlay) *overlayState {
	st := &overlayState{src: o.Local.Unmap(), port: o.Port, srcMAC: o.UplinkMAC, fdb: map[FDBKey]netip.Addr{},
		remotes: map[uint32][]netip.Addr{}, hasher: entropy.NewHasher(o.Key)}
	if st.port == 0 {
		st.port = vxlan.DefaultPort
	}
	st.local.Port = st.port
	if st.src.Is4() {
		st.local.Addr4 = st.src
	} else {
		st.local.Addr6 = st.src
	}
	for k, r := range o.FDB {
		r = r.Unmap()
		st.fdb[k] = r
		if !slices.Contains(st.remotes[k.VNI], r) {
			st.remotes[k.VNI] = append(st.remotes[k.VNI], r)
		}
	}
	st.protect = o.ProtectUnderlay
	st.underOut, st.underIn = map[underlayKey]*sa.SA{}, map[*sa.SA]underlayKey{}
	for _, u := range o.Underlay {
		s := u.SA
		switch {
		case s.Src().Unmap() == st.src && s.Dir() != sa.DirIn:
			st.underOut[underlayKey{u.VNI, s.Dst().Unmap()}] = s
			st.underExtra = max(st.underExtra, espOverhead(s))
		case s.Dst().Unmap() == st.src && s.Dir() != sa.DirOut:
			st.underIn[s] = underlayKey{u.VNI, s.Src().Unmap()}
		}
	}
	return st
}

// SetOverlay turns the VXLAN underlay on (nil: off, flat L2).
func (e *Engine) SetOverlay(o *Overlay) {
	var ov *overlayState
	if o != nil {
		ov = compileOverlay(o)
	}
	e.setConfig(func(c *config) { c.overlay = ov })
}

// SetNeighbors publishes the underlay next-hop MAC of each remote VTEP.
// Frames that waited for one of them leave first.
func (e *Engine) SetNeighbors(n map[netip.Addr]header.MAC) {
	m := make(map[netip.Addr]header.MAC, len(n))
	for a, mac := range n {
		m[a.Unmap()] = mac
	}
	e.held.mu.Lock()
	defer e.held.mu.Unlock()
	e.sendHeldLocked(m)
	e.setConfig(func(c *config) { c.neigh = m })
}

// NeighborMisses delivers remote VTEPs whose MAC a frame found unknown:
// the caller resolves them and calls SetNeighbors, within
// NeighborHoldTime for the frames waiting to leave.
func (e *Engine) NeighborMisses() <-chan netip.Addr { return e.misses }

// vxlanOut encapsulates the VM frame buf[start:end] toward remote and
// queues it on the uplink, or, while remote's MAC is not known, holds it
// (overlay_hold.go). The bytes before start are overwritten.
func (w *worker) vxlanOut(ov *overlayState, up *txPort, from *vmState, remote netip.Addr, buf []byte, start, end int) {
	o := vxlan.Outer{SrcMAC: ov.srcMAC, Src: ov.src, Dst: remote, DstPort: ov.port, VNI: from.vni}
	sport := ov.hasher.SourcePort(buf[start:end], from.vni)
	s, d := vxlan.Encap(&o, sport, buf, start, end-start)
	if d != drop.None {
		w.e.OverlayStats.EncapErrors.Add(1)
		return
	}
	if ov.protect && w.cfg.enabled {
		// ESP around the VXLAN packet, between the VTEPs (the SPI is
		// then what ECMP hashes: underlay SPIs are random).
		u := ov.underOut[underlayKey{from.vni, remote}]
		if u == nil {
			from.stats.Drop(drop.NoSA)
			return
		}
		a, b, d := esp.Encap(u, &w.sc, buf, s+ethLen, end-s-ethLen)
		if d != drop.None {
			from.stats.Drop(d)
			u.Drop(d)
			return
		}
		s, end = a-ethLen, b
		copy(buf[s+6:s+12], ov.srcMAC[:])
		binary.BigEndian.PutUint16(buf[s+12:], etherTypeOf(buf[a]))
	}
	mac, ok := w.cfg.neigh[remote]
	if !ok {
		if mac, ok = w.e.hold(from.vni, remote, buf, s, end); !ok {
			return // held, or dropped and counted
		}
	}
	copy(buf[s:s+6], mac[:])
	w.queue(up, buf, s, end, nil)
}

// fromUnderlayESP takes ESP (plain, or in UDP to 4500 for an underlay SA
// with Encap) addressed to the local VTEP when the underlay is protected:
// the SA is found by SPI among the underlay SAs, the VXLAN packet inside is
// decapsulated and must carry that SA's tenant VNI and come from its
// remote VTEP. It reports false when the frame is not ESP
// for an underlay SA (the caller goes on with it).
func (w *worker) fromUnderlayESP(snap *snapshot, ov *overlayState, buf []byte, off, n int) bool {
	if n < ethLen+20 {
		return false
	}
	et := binary.BigEndian.Uint16(buf[off+12 : off+14])
	if et != etherIPv4 && et != etherIPv6 {
		return false
	}
	ip := buf[off+ethLen : off+n]
	c := esp.Classify(ip)
	if c.Kind != esp.KindESP && c.Kind != esp.KindESPInUDP {
		return false
	}
	// ESP (or UDP to 4500) for another address — a flat VM's, or the
	// host's own — is not the underlay's.
	if c.V6 && netip.AddrFrom16([16]byte(ip[24:40])) != ov.src || !c.V6 && netip.AddrFrom4([4]byte(ip[16:20])) != ov.src {
		return false
	}
	s := w.e.db.Lookup(sa.Key{SPI: c.SPI})
	k, ok := ov.underIn[s]
	if s == nil || !ok {
		w.e.OverlayStats.UnderlayNoSA.Add(1)
		return true
	}
	copy(w.macs[:], buf[off:off+12])
	a, b, d := esp.Decap(s, &w.sc, buf, off+ethLen, n-ethLen)
	if d != drop.None {
		s.Drop(d)
		return true
	}
	start := a - ethLen
	copy(buf[start:start+12], w.macs[:])
	binary.BigEndian.PutUint16(buf[start+12:], etherTypeOf(buf[a]))
	r, vd := vxlan.Decap(&ov.local, buf, start, b-start)
	if vd != drop.None || r.VNI != k.vni || r.Src.Unmap() != k.remote {
		// ESP that carried something else than its tenant's VXLAN from
		// its VTEP: the inbound policy check of the underlay SA.
		s.Drop(drop.PolicyMismatch)
		return true
	}
	w.fromTunnel(snap, r.VNI, buf, r.Start, r.End-r.Start)
	return true
}

// pathMTU is the largest IP packet a VM may hand over before ESP: the
// uplink MTU, less VXLAN's encapsulation when the overlay is on.
func (e *Engine) pathMTU() int { return e.cfg.Load().pathMTU }

// pathMTU is the largest IP packet a VM may hand over before ESP on an
// uplink of mtu with the overlay ov (nil: none).
func pathMTU(mtu int, ov *overlayState) int {
	if ov != nil {
		// Outer IP, UDP, VXLAN and the inner Ethernet header, and the
		// underlay ESP around them.
		if ov.src.Is4() {
			mtu -= vxlan.OverheadIPv4
		} else {
			mtu -= vxlan.OverheadIPv6
		}
		mtu -= ov.underExtra
	}
	return mtu
}

// MTUs reports, per VM, the effective MTU of its traffic: the largest IP
// packet that still fits the uplink after its policies' ESP (the largest
// overhead of its outbound SAs) and the VXLAN underlay, if any. Guests
// learn it from MSS clamping and ICMP too-big; operators see it in
// `vifsec vm list`.
func (e *Engine) MTUs() map[string]int {
	snap := e.snap.Load()
	base := e.pathMTU()
	out := make(map[string]int, len(snap.byPort))
	for _, vm := range snap.byPort {
		worst := 0
		for _, s := range vm.sas {
			if s != nil && s.Dir() != sa.DirIn {
				worst = max(worst, espOverhead(s))
			}
		}
		out[vm.name] = base - worst
	}
	return out
}
