package main

import (
	"context"
	"fmt"
	"github.com/vifsec/vifsec/header"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vifsec/vifsec/internal/attach"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/vtep"
	"github.com/vifsec/vifsec/vif"
)

// runDataPath keeps the data path in line with the daemon's state until ctx
// ends: on every generation it turns the snapshot into the attacher's
// desired ports and the engine's tables. It returns after the engine has
// stopped and closed every port. onEngine, if not nil, is given the
// engine before it runs (IKE's punt and send, internal/ikeio). A receive on
// recheck probes the uplink and every VM's interface at once and logs
// what it found (SIGHUP).
func runDataPath(ctx context.Context, d *daemon.Daemon, log *slog.Logger, o dataPathOptions, onEngine func(*datapath.Engine), recheck <-chan struct{}) {
	e := datapath.New(d.SADB(), log.With("part", "datapath"))
	o.configure(e)
	if onEngine != nil {
		onEngine(e)
	}
	a := attach.New(e, func(dev, ns string, o vif.PacketOptions) (vif.Port, int, error) {
		p, err := vif.OpenPacketWith(dev, ns, o)
		if err != nil {
			return nil, 0, err
		}
		mtu := 0
		if info, err := vif.Describe(dev, ns); err == nil {
			mtu = info.MTU
			log.Info("port opened", "dev", dev, "netns", ns, "vnet_hdr", o.VnetHdr, "queues", o.Queues, "qdisc", o.Qdisc, "info", info.String())
		}
		return p, mtu, nil
	}, log.With("part", "attach"))
	workers := dataPathWorkers(o.workers)
	log.Info("data path workers", "uplink_queues", workers, "vif_queues", min(workers, attach.MaxVIFQueues), "crypto_helpers", e.CryptoHelpers())
	a.SetQueues(workers)
	d.SetVIFStatus(a.Status)
	d.SetUplinkState(a.UplinkStatus)
	d.SetLinkCheck(linkExists)
	d.SetMTUReport(e.MTUs)
	d.SetUplinkCounters(e.UplinkCounts)
	ov := vtep.New(e, log.With("part", "overlay"))
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	ovDone := make(chan struct{})
	go func() { ov.Resolve(ctx); close(ovDone) }()
	logCheck := false
	for {
		gen, changed := d.Watch()
		snap := d.Snapshot()
		e.SetEnabled(snap.Enabled)
		ov.Apply(snap)
		a.Set(wants(snap), uplinkWant(snap))
		// No packet is handled with an older table any more: the SAs it
		// alone named may go (a rekey's old SA, internal/daemon/applied.go).
		e.Quiesce()
		d.DataPathApplied(snap.Gen)
		log.Debug("data path updated", "generation", gen, "vms", len(snap.VMs))
		if logCheck {
			logRecheck(log, d)
			logCheck = false
		}
		select {
		case <-ctx.Done():
			<-done
			<-ovDone
			return
		case <-changed:
		case <-recheck: // Set at the top of the loop reconciles at once
			logCheck = true
		}
	}
}

// dataPathOptions are the daemon's flags that shape the data path.
type dataPathOptions struct {
	gro           bool // --gro: ingress coalescing toward guests
	udpGSO        bool // --udp-gso: UDP GSO trains toward the uplink
	workers       int  // --workers
	cryptoHelpers int  // --crypto-helpers: -1 one per CPU beyond the first
}

// configure applies the switches of o to e before it runs.
func (o dataPathOptions) configure(e *datapath.Engine) {
	e.SetCoalesce(o.gro)
	e.SetUDPGSO(o.udpGSO)
	e.SetCryptoHelpers(o.cryptoHelpers)
}

// dataPathWorkers is the number of queues --workers n asks for: n, or
// with 0 one per CPU the process may use.
func dataPathWorkers(n int) int {
	if n == 0 {
		return runtime.GOMAXPROCS(0)
	}
	return n
}

func wants(snap *daemon.Snapshot) []attach.Want {
	out := make([]attach.Want, 0, len(snap.VMs))
	for _, v := range snap.VMs {
		out = append(out, attach.Want{Dev: v.VM.Dev, Netns: v.VM.Netns, CreateTap: v.VM.CreateTap, VM: datapath.VM{
			Name:          v.VM.Name,
			MAC:           header.MAC(v.VM.MAC),
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

// linkExists is the daemon's check that an uplink's interface exists
// here: its error names the flag at fault.
func linkExists(dev, netns string) error {
	if _, err := vif.Describe(dev, netns); err != nil {
		if netns != "" {
			if _, nserr := os.Stat(filepath.Join("/run/netns", netns)); nserr != nil {
				return fmt.Errorf("--netns %s: no such network namespace (ip netns list)", netns)
			}
			return fmt.Errorf("--dev %s: no such interface in network namespace %s (%v); give one that exists (ip -n %s link show)", dev, netns, err, netns)
		}
		return fmt.Errorf("--dev %s: no such interface (%v); give one that exists (ip link show)", dev, err)
	}
	return nil
}

// logRecheck logs the uplink's and the VM interfaces' state after a
// re-check.
func logRecheck(log *slog.Logger, d *daemon.Daemon) {
	attached, waiting := 0, map[string]string{}
	for vm, st := range d.VIFStatus() {
		if st == "attached" {
			attached++
		} else {
			waiting[vm] = st
		}
	}
	uplink := "none"
	if u, ok := d.Uplink(); ok {
		uplink = u.Dev + ": " + d.UplinkState().String()
	}
	log.Info("SIGHUP: re-checked the uplink and VM interfaces", "uplink", uplink, "vifs_attached", attached, "vifs_waiting", len(waiting))
	for vm, why := range waiting {
		log.Warn("SIGHUP: VM interface not attached", "vm", vm, "why", why)
	}
}
