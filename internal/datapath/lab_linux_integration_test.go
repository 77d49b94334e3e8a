//go:build linux

package datapath_test

import (
	"context"
	"fmt"
	"github.com/vifsec/vifsec/drop"
	"github.com/vifsec/vifsec/header"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vifsec/vifsec/examples/lab"
	"github.com/vifsec/vifsec/internal/datapath"
	"github.com/vifsec/vifsec/internal/testutil"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
	"github.com/vifsec/vifsec/vif"
)

// gatewaySAs configures every VM of gw with SAs and policies protecting all
// its traffic to the peer VM of its tenant, in mode, for both families.
// Tenants share SPIs and addresses but not keys.
func gatewayVMs(t *testing.T, l *lab.Lab, gw *lab.Gateway, db *sa.DB, mode sa.Mode, ports map[string]vif.Port) []datapath.VM {
	var vms []datapath.VM
	for ti, v := range gw.VMs {
		mac, _ := tenant.ParseMAC(v.MAC)
		peer := l.VM(v.Tenant, map[string]string{"a": "b", "b": "a"}[gw.Name])
		var pols []tenant.Policy
		var sas []*sa.SA
		for fi, fam := range []struct{ local, remote netip.Addr }{{v.IP6, peer.IP6}, {v.IP4, peer.IP4}} {
			// SPIs: 0x1000/0x1001 from a to b, 0x2000/0x2001 back; the
			// same in every tenant.
			outSPI, inSPI := uint32(0x1000+fi), uint32(0x2000+fi)
			if gw.Name == "b" {
				outSPI, inSPI = inSPI, outSPI
			}
			src, dst := fam.local, fam.remote
			for _, d := range []struct {
				dir      sa.Direction
				spi      uint32
				src, dst netip.Addr
			}{{sa.DirOut, outSPI, src, dst}, {sa.DirIn, inSPI, dst, src}} {
				c := sa.Config{
					Name: fmt.Sprintf("%s-%v-%x", v.Name, d.dir, d.spi), Scope: sa.Scope{VLAN: v.VLAN, MAC: header.MAC(mac)},
					SPI: d.spi, Dir: d.dir, Src: d.src, Dst: d.dst, Mode: mode,
					Enc: sa.EncAES128GCM, EncKey: []byte(fmt.Sprintf("%s-key-%08x!!", v.Tenant[:3], d.spi))[:20], Integ: sa.IntegNone,
				}
				_ = ti
				s, err := sa.New(c)
				if err != nil {
					t.Fatal(err)
				}
				if err := db.Add(s); err != nil {
					t.Fatal(err)
				}
				bits := 128
				if fam.local.Is4() {
					bits = 32
				}
				pols = append(pols, tenant.Policy{
					Name: c.Name, VM: v.Name,
					Src:     netip.PrefixFrom(map[bool]netip.Addr{true: src, false: dst}[d.dir == sa.DirOut], bits),
					Dst:     netip.PrefixFrom(map[bool]netip.Addr{true: dst, false: src}[d.dir == sa.DirOut], bits),
					SrcPort: tenant.PortAny, DstPort: tenant.PortAny, ULProto: tenant.ProtoAny,
					Direction: d.dir, Action: tenant.ActionIPsec, Mode: mode, SAName: c.Name,
				})
				sas = append(sas, s)
			}
		}
		vms = append(vms, datapath.VM{Name: v.Name, Port: ports[v.Name], MAC: header.MAC(mac), VLAN: v.VLAN,
			IPs: []netip.Addr{v.IP6, v.IP4}, DefaultAction: tenant.ActionNone, Policies: pols, SAs: sas, VnetHdr: true})
	}
	return vms
}

func TestIntegrationLabDataPath(t *testing.T) {
	testutil.NeedRoot(t, "ip", "ethtool", "ping")
	ctx := context.Background()
	l, err := lab.Build(ctx, fmt.Sprintf("vdp%d", os.Getpid()%10000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, mode := range []sa.Mode{sa.ModeTransport, sa.ModeTunnel} {
		t.Run(mode.String(), func(t *testing.T) {
			goroutines := runtime.NumGoroutine()
			var engines []*datapath.Engine
			for _, gw := range l.Gateways {
				db := sa.NewDB(0)
				e := datapath.New(db, nil)
				t.Cleanup(e.Close)
				engines = append(engines, e)
				ports := map[string]vif.Port{}
				// Two queues, one worker each, per port: as vifsecd's
				// default on a 2-CPU host (--workers).
				for _, v := range gw.VMs {
					p, err := vif.OpenPacketWith(v.Dev, gw.NS, vif.PacketOptions{VnetHdr: true, Queues: 2})
					if err != nil {
						t.Fatal(err)
					}
					ports[v.Name] = p
				}
				up, err := vif.OpenPacketWith(gw.Uplink, gw.NS, vif.PacketOptions{Queues: 2})
				if err != nil {
					t.Fatal(err)
				}
				e.Update(gatewayVMs(t, l, gw, db, mode, ports))
				e.SetUplink(up, 0)
			}
			for _, tn := range lab.Tenants {
				a, b := l.VM(tn.Name, "a"), l.VM(tn.Name, "b")
				for _, dst := range []netip.Addr{b.IP6, b.IP4} {
					out, err := lab.Exec(ctx, a.NS, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst.String())
					if err != nil {
						t.Fatalf("%s: ping %s: %v\n%s", tn.Name, dst, err, out)
					}
				}
				for _, dst := range []netip.Addr{b.IP6, b.IP4} {
					if err := lab.TCPEcho(a.NS, b.NS, dst, 0, 64<<10); err != nil {
						t.Fatalf("%s: tcp echo to %s: %v", tn.Name, dst, err)
					}
				}
			}
			for i, e := range engines {
				for name, st := range e.AllStats() {
					if st.PacketsIn.Load() == 0 || st.PacketsOut.Load() == 0 {
						t.Errorf("gateway %d %s: in %d out %d", i, name, st.PacketsIn.Load(), st.PacketsOut.Load())
					}
					for d := drop.Reason(1); d < drop.NumCounted; d++ {
						if n := st.Drops[d].Load(); n != 0 && d != drop.Replay {
							t.Errorf("gateway %d %s: %d drops %v", i, name, n, d)
						}
					}
				}
				e.Close()
			}
			// Every worker is gone.
			deadline := time.Now().Add(2 * time.Second)
			for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > goroutines {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d before, %d after Close:\n%s", goroutines, n, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}
