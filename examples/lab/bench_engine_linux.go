package lab

import (
	"fmt"
	"github.com/vifsec/vifsec/header"
	"net/netip"

	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

// BenchEngine is vifsec's data path for one gateway run inside the calling
// process, without vifsecd: a datapath.Engine on AF_PACKET ports of the
// gateway's uplink and of one VM, configured as ConfigureBench configures
// the daemon. It lets the benchmark measure and CPU-profile (runtime/pprof)
// the data path alone, and it works before the daemon wires its engine.
type BenchEngine struct {
	E      *datapath.Engine
	VM     *VM
	outSAs []*sa.SA
}

// StartBenchEngine opens vm's host end and its gateway's uplink with
// AF_PACKET and starts an engine with p's SAs and SPs for vm's traffic
// with the VM of its tenant on the other gateway (IPv6 and IPv4).
func StartBenchEngine(l *Lab, vm *VM, p BenchPolicy) (*BenchEngine, error) {
	gw := vm.Gateway
	other := map[string]string{"a": "b", "b": "a"}[gw.Name]
	peer := l.VM(vm.Tenant, other)
	if peer == nil {
		return nil, fmt.Errorf("bench: no %s VM on gateway %s", vm.Tenant, other)
	}
	mode, err := sa.ParseMode(p.Mode)
	if err != nil {
		return nil, fmt.Errorf("bench: mode %q: %w", p.Mode, err)
	}
	action := tenant.ActionNone
	var enc sa.EncAlg
	if p.Action == "ipsec" {
		action = tenant.ActionIPsec
		if enc, err = sa.ParseEncAlg(p.Enc); err != nil {
			return nil, err
		}
	}
	hw, err := tenant.ParseMAC(vm.MAC)
	if err != nil {
		return nil, err
	}
	mac := header.MAC(hw)
	db := sa.NewDB(0)
	var pols []tenant.Policy
	var sas []*sa.SA
	for fi, fam := range []struct{ local, remote netip.Addr }{{vm.IP6, peer.IP6}, {vm.IP4, peer.IP4}} {
		lp := netip.PrefixFrom(fam.local, fam.local.BitLen())
		rp := netip.PrefixFrom(fam.remote, fam.remote.BitLen())
		base := map[string]uint32{"a": 0x1000, "b": 0x2000}
		for _, d := range []struct {
			dir      sa.Direction
			spi      uint32
			src, dst netip.Prefix
		}{{sa.DirOut, base[gw.Name] + uint32(fi), lp, rp}, {sa.DirIn, base[other] + uint32(fi), rp, lp}} {
			pol := tenant.Policy{
				Name: fmt.Sprintf("bench-%v-%d", d.dir, fi), VM: vm.Name, Src: d.src, Dst: d.dst,
				SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: tenant.ProtoAny,
				Direction: d.dir, Action: action, Mode: mode,
			}
			if action == tenant.ActionIPsec {
				keyHex, err := benchKey(p.Enc, d.spi)
				if err != nil {
					return nil, err
				}
				key, err := sa.ParseKey(keyHex)
				if err != nil {
					return nil, err
				}
				s, err := sa.New(sa.Config{
					Name: pol.Name, Scope: sa.Scope{VLAN: vm.VLAN, MAC: mac}, SPI: d.spi, Dir: d.dir,
					Src: d.src.Addr(), Dst: d.dst.Addr(), Mode: mode, Enc: enc, EncKey: key, Integ: sa.IntegNone,
				})
				if err != nil {
					return nil, err
				}
				if err := db.Add(s); err != nil {
					return nil, err
				}
				pol.SAName = pol.Name
				sas = append(sas, s)
			} else {
				sas = append(sas, nil)
			}
			pols = append(pols, pol)
		}
	}
	// As vifsecd opens them: the VIF with virtio-net headers (the guest
	// keeps TSO/GSO and checksum offload), the uplink without, and with
	// its MTU so super-frames are cut to fit after ESP.
	port, err := vif.OpenPacketWith(vm.Dev, gw.NS, vif.PacketOptions{VnetHdr: true})
	if err != nil {
		return nil, err
	}
	up, err := vif.OpenPacket(gw.Uplink, gw.NS)
	if err != nil {
		port.Close()
		return nil, err
	}
	upInfo, err := vif.Describe(gw.Uplink, gw.NS)
	if err != nil {
		port.Close()
		up.Close()
		return nil, err
	}
	e := datapath.New(db, nil)
	e.Update([]datapath.VM{{Name: vm.Name, Port: port, VnetHdr: true, MAC: mac, VLAN: vm.VLAN,
		IPs: []netip.Addr{vm.IP6, vm.IP4}, DefaultAction: tenant.ActionNone, Policies: pols, SAs: sas}})
	e.SetUplink(up, upInfo.MTU)
	b := &BenchEngine{E: e, VM: vm}
	for _, s := range sas {
		if s != nil && s.Dir() == sa.DirOut {
			b.outSAs = append(b.outSAs, s)
		}
	}
	return b, nil
}

// Counters returns the VM's packets out and, summed over its out SAs, the
// ESP bytes sent.
func (b *BenchEngine) Counters() (packetsOut, espBytesOut uint64) {
	st := b.E.Stats(b.VM.Name)
	if st == nil {
		return 0, 0
	}
	for _, s := range b.outSAs {
		espBytesOut += s.Stats.Bytes.Load()
	}
	return st.PacketsOut.Load(), espBytesOut
}

// Close stops the engine and closes its ports.
func (b *BenchEngine) Close() { b.E.Close() }
