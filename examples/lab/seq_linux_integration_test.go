//go:build linux

package lab

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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

	seqPing(t, src, dst, "first run", "-f", "-c", "500")

	// 1. SIGTERM, start.
	if err := ds[0].Stop(); err != nil {
		t.Fatal(err)
	}
	d := restart()
	seqPing(t, src, dst, "after SIGTERM and start", "-f", "-c", "500")

	// 2. A flood, SIGKILL in its middle, start.
	stopFlood := seqFloodKill(t, d, src, dst, src.Name, 3000)
	defer stopFlood()
	restart() // stopped by the cleanup restart registered
	seqPing(t, src, dst, "after SIGKILL and start", "-f", "-c", "500")
	stopFlood()

	for _, c := range caps {
		c.Stop()
	}
	seqCheckWire(t, capFiles, 3000)
	for vm, n := range replayDrops(t, ds[1]) {
		if n != 0 {
			t.Errorf("gateway b dropped %d frames of %s as replays", n, vm)
		}
	}
}

// seqPing pings dst's IPv6 address from src with args (ping's options),
// retrying for up to 5s: after a start, until the VIFs are attached.
func seqPing(t *testing.T, src, dst *VM, what string, args ...string) {
	t.Helper()
	var err error
	var out []byte
	for range 50 {
		out, err = Exec(context.Background(), src.NS, append([]string{"ping", "-W", "1"}, append(args, dst.IP6.String())...)...)
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: ping: %v %s", what, err, out)
}

// seqFloodKill starts a ping flood from src to dst, waits until d has
// counted burst more packets on the SAs of VM vm (within 15s), and kills
// d with SIGKILL while the flood runs. The flood goes on (through the
// next start) until the returned stop is called; stop is idempotent.
func seqFloodKill(t *testing.T, d *Daemon, src, dst *VM, vm string, burst uint64) (stop func()) {
	t.Helper()
	flood := exec.Command("ip", "netns", "exec", src.NS, "ping", "-f", "-c", "20000", "-W", "1", dst.IP6.String())
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { flood.Process.Kill(); flood.Wait() }) }
	before := outPackets(t, d, vm)
	deadline := time.Now().Add(15 * time.Second)
	for outPackets(t, d, vm) < before+burst {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("the flood did not reach %d packets on %s's SAs within 15s", burst, vm)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.Kill(); err != nil {
		stop()
		t.Fatal(err)
	}
	return stop
}

// seqCheckWire reads the captures in files and fails t for every
// (VLAN, SPI, sequence number) of an ESP frame (802.1Q, IPv6, ESP: the
// labs' transport SAs) that appears more than once across them, or if
// fewer than atLeast ESP frames were captured. Each frame must be in one
// file only: capture each direction where it is received.
func seqCheckWire(t *testing.T, files []string, atLeast int) {
	t.Helper()
	seen := map[string]int{}
	dups, esp := 0, 0
	for _, f := range files {
		frames, err := ReadPcap(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range frames {
			if len(fr) < 18+40+8 || binary.BigEndian.Uint16(fr[12:]) != 0x8100 || binary.BigEndian.Uint16(fr[16:]) != 0x86dd || fr[18+6] != 50 {
				continue
			}
			esp++
			// Per capture point: a frame one gateway sent is in its
			// uplink's capture (egress) and in the other's (ingress).
			k := fmt.Sprintf("%s: vlan %d spi 0x%08x seq %d", filepath.Base(f), binary.BigEndian.Uint16(fr[14:])&0xfff,
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
	if esp < atLeast {
		t.Errorf("only %d ESP frames captured, want at least %d", esp, atLeast)
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
