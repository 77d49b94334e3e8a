package datapath

import (
	"net/netip"
	"slices"

	"github.com/vifsec/vifsec/overlay/entropy"
	"github.com/vifsec/vifsec/overlay/vxlan"
	"github.com/vifsec/vifsec/sa"
)

// Overlay is the VXLAN underlay of the uplink (RFC 7348): VM frames — ESP
// already applied, so the underlay sees VXLAN whose payload is ESP — leave
// inside VXLAN with the VM's tenant VNI, toward the remote VTEP the FDB
// names for the destination MAC; VXLAN arriving for the local VTEP is
// decapsulated and delivered by (VNI, inner destination MAC).
type Overlay struct {
	Local     netip.Addr // the local VTEP (underlay source) address
	Port      uint16     // UDP port; 0 = 4789
	UplinkMAC sa.MAC     // outer source MAC
	// FDB maps (VNI, inner MAC) to the remote VTEP behind which that MAC
	// lives. Broadcast and multicast go to every remote VTEP of the VNI
	// (head-end replication).
	FDB map[FDBKey]netip.Addr
	// Key keys the source-port hash (per host, so outsiders cannot steer
	// ECMP buckets).
	Key [16]byte
}

// FDBKey is an FDB entry's key.
type FDBKey struct {
	VNI uint32
	MAC sa.MAC
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
	return st
}

// SetOverlay turns the VXLAN underlay on (nil: off, flat L2).
func (e *Engine) SetOverlay(o *Overlay) {
	if o == nil {
		e.overlay.Store(nil)
		return
	}
	e.overlay.Store(compileOverlay(o))
}

// SetNeighbors publishes the underlay next-hop MAC of each remote VTEP.
func (e *Engine) SetNeighbors(n map[netip.Addr]sa.MAC) {
	m := make(map[netip.Addr]sa.MAC, len(n))
	for a, mac := range n {
		m[a.Unmap()] = mac
	}
	e.neigh.Store(&m)
}

// NeighborMisses delivers remote VTEPs frames were dropped for because
// their MAC is not known yet: the caller resolves them and SetNeighbors.
func (e *Engine) NeighborMisses() <-chan netip.Addr { return e.misses }

// vxlanOut encapsulates the VM frame buf[start:end] toward remote and
// queues it on the uplink. The bytes before start are overwritten.
func (w *worker) vxlanOut(ov *overlayState, up *txPort, from *vmState, remote netip.Addr, buf []byte, start, end int) {
	nm := w.e.neigh.Load()
	var mac sa.MAC
	ok := false
	if nm != nil {
		mac, ok = (*nm)[remote]
	}
	if !ok {
		select {
		case w.e.misses <- remote:
		default:
		}
		w.e.OverlayStats.NoNeighbor.Add(1)
		return
	}
	o := vxlan.Outer{SrcMAC: ov.srcMAC, DstMAC: mac, Src: ov.src, Dst: remote, DstPort: ov.port, VNI: from.vni}
	sport := ov.hasher.SourcePort(buf[start:end], from.vni)
	s, d := vxlan.Encap(&o, sport, buf, start, end-start)
	if d != vxlan.DropNone {
		w.e.OverlayStats.EncapErrors.Add(1)
		return
	}
	w.queue(up, buf, s, end, nil)
}

// pathMTU is the largest IP packet a VM may hand over before ESP: the
// uplink MTU, less VXLAN's encapsulation when the overlay is on.
func (e *Engine) pathMTU() int {
	mtu := int(e.uplinkMTU.Load())
	if ov := e.overlay.Load(); ov != nil {
		// Outer IP, UDP, VXLAN and the inner Ethernet header.
		if ov.src.Is4() {
			mtu -= vxlan.OverheadIPv4
		} else {
			mtu -= vxlan.OverheadIPv6
		}
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
