package main

import (
	"context"
	"crypto/rand"
	"github.com/vifsec/vifsec/header"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/vif"
)

// overlayCtl keeps the data path's VXLAN underlay in line with the
// configured uplink and FDB: it compiles the FDB by VNI, holds the VXLAN
// UDP port on the host (so the host's stack does not answer vifsec's VXLAN
// with port-unreachable), and resolves each remote VTEP's next-hop MAC
// through the kernel's neighbour table of the uplink.
type overlayCtl struct {
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
}

func newOverlayCtl(e *datapath.Engine, log *slog.Logger) *overlayCtl {
	o := &overlayCtl{e: e, log: log}
	rand.Read(o.key[:])
	return o
}

// apply takes a new snapshot.
func (o *overlayCtl) apply(snap *daemon.Snapshot) {
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
			fdb[datapath.FDBKey{VNI: v, MAC: header.MAC(f.MAC)}] = f.Remote
			if !seen[f.Remote] {
				seen[f.Remote] = true
				remotes = append(remotes, f.Remote)
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

func (o *overlayCtl) release() {
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

// resolve keeps the remote VTEPs' MACs fresh: every second, and at once
// when the data path missed one.
func (o *overlayCtl) resolve(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer func() {
		o.mu.Lock()
		o.release()
		o.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-o.e.NeighborMisses():
			time.Sleep(20 * time.Millisecond) // let ARP/ND answer
		}
		o.mu.Lock()
		dev, ns, remotes := o.dev, o.ns, o.remotes
		o.mu.Unlock()
		if dev == "" {
			continue
		}
		known := map[netip.Addr]header.MAC{}
		for _, r := range remotes {
			mac, ok, err := vif.ResolveNeighbor(dev, ns, r)
			if err != nil {
				o.log.Debug("remote VTEP not resolved", "remote", r, "err", err)
				continue
			}
			if ok {
				known[r] = header.MAC(mac)
			}
		}
		o.e.SetNeighbors(known)
	}
}
