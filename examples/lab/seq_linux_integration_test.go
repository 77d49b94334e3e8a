//go:build linux

package lab

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestIntegrationSeqRestart: gateway a's vifsecd is stopped with SIGTERM
// and started again, then killed with SIGKILL in the middle of a ping
// flood and started again, on the same state directory. On the wire
// (both uplinks captured) no (VLAN, SPI, sequence number) of an ESP frame
// appears twice, the peer (gateway b) counts no replay drop, and traffic
// flows after each restart.
func TestIntegrationSeqRestart(t *testing.T) {
	bin := needDemoTools(t)
	ctx := context.Background()
	l, ds, _ := startLab(t, bin, fmt.Sprintf("vq%d", os.Getpid()%10000), "transport")
	caps, capFiles := startCaptures(t, l)
	src, dst := l.VM("acme", "a"), l.VM("acme", "b")
	gwA := l.Gateways[0]
	dir := ds[0].Dir

	ping := func(what string, args ...string) {
		t.Helper()
		var err error
		var out []byte
		for range 50 { // until the VIFs are attached after a start
			out, err = Exec(ctx, src.NS, append([]string{"ping", "-W", "1"}, append(args, dst.IP6.String())...)...)
			if err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: ping: %v %s", what, err, out)
	}
	restart := func() *Daemon {
		t.Helper()
		d, err := StartDaemon(ctx, bin, gwA, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				log, _ := os.ReadFile(d.Log)
				t.Logf("vifsecd a (restarted) log:\n%s", log)
			}
			d.Stop()
		})
		return d
	}

	ping("first run", "-f", "-c", "500")

	// 1. SIGTERM, start.
	if err := ds[0].Stop(); err != nil {
		t.Fatal(err)
	}
	d := restart()
	ping("after SIGTERM and start", "-f", "-c", "500")

	// 2. A flood, SIGKILL in its middle, start.
	flood := exec.Command("ip", "netns", "exec", src.NS, "ping", "-f", "-c", "20000", "-W", "1", dst.IP6.String())
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { flood.Process.Kill(); flood.Wait() }()
	sentBefore := outPackets(t, d, "acme-a")
	deadline := time.Now().Add(15 * time.Second)
	for outPackets(t, d, "acme-a") < sentBefore+3000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	d.exited <- nil
	restart() // stopped by the cleanup restart registered
	ping("after SIGKILL and start", "-f", "-c", "500")
	flood.Process.Kill()
	flood.Wait()

	for _, c := range caps {
		c.Stop()
	}
	seen := map[string]int{}
	dups, esp := 0, 0
	for _, f := range capFiles {
		frames, err := ReadPcap(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range frames {
			// 802.1Q, IPv6, next header ESP: the lab's transport SAs.
			if len(fr) < 18+40+8 || binary.BigEndian.Uint16(fr[12:]) != 0x8100 || binary.BigEndian.Uint16(fr[16:]) != 0x86dd || fr[18+6] != 50 {
				continue
			}
			esp++
			k := fmt.Sprintf("vlan %d spi 0x%08x seq %d", binary.BigEndian.Uint16(fr[14:])&0xfff,
				binary.BigEndian.Uint32(fr[18+40:]), binary.BigEndian.Uint32(fr[18+44:]))
			if seen[k]++; seen[k] == 2 {
				dups++
				if dups <= 5 {
					t.Errorf("sent twice: %s", k)
				}
			}
		}
	}
	if dups > 0 {
		t.Errorf("%d (SPI, sequence number) pairs sent more than once, of %d ESP frames", dups, esp)
	}
	if esp < 3000 {
		t.Errorf("only %d ESP frames captured", esp)
	}
	for vm, n := range replayDrops(t, ds[1]) {
		if n != 0 {
			t.Errorf("gateway b dropped %d frames of %s as replays", n, vm)
		}
	}
	t.Logf("%d ESP frames on the wire, %d (SPI, sequence number) pairs repeated", esp, dups)
}

type statsRow struct {
	VM    string            `json:"vm"`
	Drops map[string]uint64 `json:"drops"`
	SAs   []struct {
		Name    string            `json:"name"`
		Packets uint64            `json:"packets"`
		Drops   map[string]uint64 `json:"drops"`
	} `json:"sas"`
}

func statsOf(t *testing.T, d *Daemon) []statsRow {
	t.Helper()
	out, err := d.CLI(context.Background(), "--format", "json", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var rows []statsRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("stats json: %v\n%s", err, out)
	}
	return rows
}

// outPackets is the packets counted on the SAs of vm (both directions).
func outPackets(t *testing.T, d *Daemon, vm string) uint64 {
	var n uint64
	for _, r := range statsOf(t, d) {
		if r.VM == vm {
			for _, s := range r.SAs {
				n += s.Packets
			}
		}
	}
	return n
}

// replayDrops is, per VM, the replay drops of the VM and its SAs.
func replayDrops(t *testing.T, d *Daemon) map[string]uint64 {
	m := map[string]uint64{}
	for _, r := range statsOf(t, d) {
		m[r.VM] += r.Drops["replay"]
		for _, s := range r.SAs {
			m[r.VM] += s.Drops["replay"]
		}
	}
	return m
}
