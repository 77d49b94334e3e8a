package main

import (
	"context"
	"log/slog"

	"github.com/vifsec/vifsec/internal/attach"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/vif"
)

// runDataPath keeps the data path in line with the daemon's state until ctx
// ends: on every generation it turns the snapshot into the attacher's
// desired ports and the engine's tables. It returns after the engine has
// stopped and closed every port. onEngine, if not nil, is given the
// engine before it runs (IKE's punt and send, ike.go); onAttach, if not
// nil, the attacher (readiness, health.go).
func runDataPath(ctx context.Context, d *daemon.Daemon, log *slog.Logger, gro bool, onEngine func(*datapath.Engine), onAttach func(*attach.Attacher)) {
	e := datapath.New(d.SADB(), log.With("part", "datapath"))
	e.SetCoalesce(gro)
	if onEngine != nil {
		onEngine(e)
	}
	a := attach.New(e, func(dev, ns string, vnet bool) (vif.Port, int, error) {
		p, err := vif.OpenPacketWith(dev, ns, vif.PacketOptions{VnetHdr: vnet})
		if err != nil {
			return nil, 0, err
		}
		mtu := 0
		if info, err := vif.Describe(dev, ns); err == nil {
			mtu = info.MTU
			log.Info("port opened", "dev", dev, "netns", ns, "vnet_hdr", vnet, "info", info.String())
		}
		return p, mtu, nil
	}, log.With("part", "attach"))
	d.SetVIFStatus(a.Status)
	if onAttach != nil {
		onAttach(a)
	}
	d.SetMTUReport(e.MTUs)
	d.SetUplinkCounters(e.UplinkCounts)
	ov := newOverlayCtl(e, log.With("part", "overlay"))
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	ovDone := make(chan struct{})
	go func() { ov.resolve(ctx); close(ovDone) }()
	for {
		gen, changed := d.Watch()
		snap := d.Snapshot()
		e.SetEnabled(snap.Enabled)
		ov.apply(snap)
		a.Set(wants(snap), uplinkWant(snap))
		log.Debug("data path updated", "generation", gen, "vms", len(snap.VMs))
		select {
		case <-ctx.Done():
			<-done
			<-ovDone
			return
		case <-changed:
		}
	}
}

func wants(snap *daemon.Snapshot) []attach.Want {
	out := make([]attach.Want, 0, len(snap.VMs))
	for _, v := range snap.VMs {
		out = append(out, attach.Want{Dev: v.VM.Dev, Netns: v.VM.Netns, CreateTap: v.VM.CreateTap, VM: datapath.VM{
			Name:          v.VM.Name,
			MAC:           sa.MAC(v.VM.MAC),
			VLAN:          v.VM.VLAN,
			VNI:           v.Tenant.VNI,
			IPs:           v.VM.IPs,
			DefaultAction: v.Tenant.DefaultAction,
			Policies:      v.Policies,
			SAs:           v.PolicySAs,
			Stats:         v.Counters,
			IKE:           v.IKE,
		}})
	}
	return out
}

func uplinkWant(snap *daemon.Snapshot) *attach.UplinkWant {
	if snap.Uplink == nil {
		return nil
	}
	return &attach.UplinkWant{Dev: snap.Uplink.Dev, Netns: snap.Uplink.Netns}
}
