package vtep

import (
	"context"
	"crypto/rand"
	"github.com/vifsec/vifsec/header"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/vif"
)

// Controller keeps the data path's VXLAN underlay in line with the
// configured uplink and FDB: it compiles the FDB by VNI, holds the VXLAN
// UDP port on the host (so the host's stack does not answer vifsec's VXLAN
// with port-unreachable), and resolves each remote VTEP's next-hop MAC
// through the kernel's neighbour table of the uplink.
type Controller struct {
	e   *datapath.Engine
	log *slog.Logger
	key [16]byte // source-port hash key, per daemon run

	mu      sync.Mutex
	dev, ns string
	remotes []netip.Addr
	hold    net.PacketConn // the VXLAN UDP port
	holdAt  string
	holdESP net.PacketConn // protocol 50, with --protect underlay
	espAt   string
	// kick asks Resolve to look at the remotes now (new ones appeared).
	kick chan struct{}
}

// New makes the controller of e's overlay. Apply gives it each snapshot;
// Resolve runs its neighbour resolution until the context ends.
func New(e *datapath.Engine, log *slog.Logger) *Controller {
	o := &Controller{e: e, log: log, kick: make(chan struct{}, 1)}
	rand.Read(o.key[:])
	return o
}

// Apply takes a new snapshot.
func (o *Controller) Apply(snap *daemon.Snapshot) {
	o.mu.Lock()
	defer o.mu.Unlock()
	u := snap.Uplink
	if u == nil || u.Overlay != daemon.OverlayVXLAN {
		o.e.SetOverlay(nil)
		o.release()
		o.dev, o.remotes = "", nil
		return
	}
	info, err := vif.Describe(u.Dev, u.Netns)
	if err != nil || len(info.MAC) != 6 {
		o.log.Warn("VXLAN underlay waits for the uplink", "dev", u.Dev, "err", err)
		o.e.SetOverlay(nil)
		return
	}
	vni := map[string]uint32{}
	for _, t := range snap.Tenants {
		vni[t.Name] = t.VNI
	}
	fdb := map[datapath.FDBKey]netip.Addr{}
	var remotes []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, f := range snap.FDB {
		if v := vni[f.Tenant]; v != 0 {
			r := f.Remote.Unmap()
			fdb[datapath.FDBKey{VNI: v, MAC: header.MAC(f.MAC)}] = r
			if !seen[r] {
				seen[r] = true
				remotes = append(remotes, r)
			}
		}
	}
	port := u.VXLANPort
	if port == 0 {
		port = daemon.DefaultVXLANPort
	}
	ov := &datapath.Overlay{Local: u.VXLANLocal, Port: port, UplinkMAC: header.MAC(info.MAC), FDB: fdb, Key: o.key,
		ProtectUnderlay: u.Protect == daemon.ProtectUnderlay}
	for _, us := range snap.UnderlaySAs {
		if v := vni[us.Tenant]; v != 0 {
			ov.Underlay = append(ov.Underlay, datapath.UnderlaySA{VNI: v, SA: us.SA})
		}
	}
	o.e.SetOverlay(ov)
	if u.Dev != o.dev || u.Netns != o.ns || slices.ContainsFunc(remotes, func(r netip.Addr) bool { return !slices.Contains(o.remotes, r) }) {
		select {
		case o.kick <- struct{}{}:
		default:
		}
	}
	o.dev, o.ns, o.remotes = u.Dev, u.Netns, remotes
	at := u.Netns + "/" + netip.AddrPortFrom(u.VXLANLocal, port).String()
	if o.holdAt != at {
		o.release()
		c, err := vif.ListenUDP(u.Netns, netip.AddrPortFrom(u.VXLANLocal, port))
		if err != nil {
			o.log.Warn("cannot hold the VXLAN port on the host; its stack may answer VXLAN with ICMP", "addr", at, "err", err)
		} else {
			o.hold, o.holdAt = c, at
			go drain(c)
		}
	}
	espAt := ""
	if ov.ProtectUnderlay {
		espAt = u.Netns + "/" + u.VXLANLocal.String()
	}
	if o.espAt != espAt {
		if o.holdESP != nil {
			o.holdESP.Close()
			o.holdESP, o.espAt = nil, ""
		}
		if espAt != "" {
			c, err := vif.ListenESP(u.Netns, u.VXLANLocal)
			if err != nil {
				o.log.Warn("cannot hold ESP on the host; its stack may answer underlay ESP with ICMP", "addr", espAt, "err", err)
			} else {
				o.holdESP, o.espAt = c, espAt
				go drain(c)
			}
		}
	}
}

func (o *Controller) release() {
	if o.hold != nil {
		o.hold.Close()
		o.hold, o.holdAt = nil, ""
	}
	if o.holdESP != nil {
		o.holdESP.Close()
		o.holdESP, o.espAt = nil, ""
	}
}

// drain reads and discards: vifsec sees these frames on the uplink itself.
func drain(c net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		if _, _, err := c.ReadFrom(buf); err != nil {
			return
		}
	}
}

// waitingPoll is how often the kernel's neighbour table is read while
// frames wait for a remote VTEP's MAC (datapath.NeighborHoldTime at most).
const waitingPoll = 20 * time.Millisecond

// Resolve keeps the remote VTEPs' MACs fresh: every second, at once when
// the FDB names new remotes, and while frames wait for a remote's MAC
// (the data path reported a miss), every waitingPoll until the kernel
// has resolved it or the frames' wait is over.
func (o *Controller) Resolve(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer func() {
		o.mu.Lock()
		o.release()
		o.mu.Unlock()
	}()
	waiting := map[netip.Addr]time.Time{} // remote → end of its frames' wait
	for {
		var poll <-chan time.Time
		if len(waiting) > 0 {
			poll = time.After(waitingPoll)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-o.kick:
		case r := <-o.e.NeighborMisses():
			waiting[r.Unmap()] = time.Now().Add(datapath.NeighborHoldTime)
		case <-poll:
		}
		o.mu.Lock()
		dev, ns, remotes := o.dev, o.ns, o.remotes
		o.mu.Unlock()
		if dev == "" {
			clear(waiting)
			continue
		}
		macs, err := vif.ResolveNeighbors(dev, ns, remotes)
		if err != nil {
			o.log.Debug("remote VTEPs not all resolved", "err", err)
		}
		known := make(map[netip.Addr]header.MAC, len(macs))
		for r, mac := range macs {
			known[r] = header.MAC(mac)
		}
		now := time.Now()
		for r, until := range waiting {
			if _, ok := known[r]; ok || now.After(until) || !slices.Contains(remotes, r) {
				delete(waiting, r)
			}
		}
		o.e.SetNeighbors(known)
	}
}
