package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Keys of the demo SAs: per tenant and direction, so the two tenants'
// traffic with SPI 0x1000 is keyed differently. AES-GCM-128: 16-byte key +
// 4-byte salt (RFC 4106).
func demoKey(tenant string, spi uint32) string {
	seed := map[string]byte{"acme": 0xac, "globex": 0x6e}[tenant]
	var b strings.Builder
	b.WriteString("0x")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "%02x", seed^byte(i*17)^byte(spi>>8)^byte(spi))
	}
	return b.String()
}

// SPIs: the same in every tenant (SPIs are per VM). a→b uses ESXi's examples'
// 0x1000 (IPv6) and 0x1001 (IPv4); b→a 0x2000 and 0x2001.
func demoSPI(fromGW string, v4 bool) uint32 {
	spi := uint32(0x1000)
	if fromGW == "b" {
		spi = 0x2000
	}
	if v4 {
		spi++
	}
	return spi
}

// Ports of the demo's special flows.
const (
	ClearUDPPort   = 7777 // policy none: crosses the wire in clear
	DiscardTCPPort = 23   // policy discard: never crosses
)

// SAEntry is one SA as tshark needs it for an independent check.
type SAEntry struct {
	Tenant   string
	VLAN     uint16
	Src, Dst netip.Addr
	SPI      uint32
	Key      string
}

// Configure writes the demo's desired state into gateway d's vifsecd
// through the CLI, printing each command to w. Mode is transport or tunnel.
func Configure(ctx context.Context, l *Lab, d *Daemon, mode string, w io.Writer) ([]SAEntry, error) {
	return ConfigureWith(ctx, l, d, mode, w, false)
}

// Underlay addresses of the gateways' uplinks when the lab runs VXLAN
// (UnderlayAddr gives each gateway's).
var underlay = map[string]netip.Addr{"a": netip.MustParseAddr("203.0.113.1"), "b": netip.MustParseAddr("203.0.113.2")}

// UnderlayAddr is gateway gw's VTEP address in VXLAN mode.
func UnderlayAddr(gw string) netip.Addr { return underlay[gw] }

// VNI of each tenant in VXLAN mode.
func VNI(tenant string) uint32 { return map[string]uint32{"acme": 1000, "globex": 2000}[tenant] }

// AddUnderlay gives each gateway's uplink its VTEP address (the host's
// stack answers ARP for it, so the other side can resolve it).
func (l *Lab) AddUnderlay(ctx context.Context) error { return l.underlayAddrs(ctx, "add") }

// IPv6 underlay addresses (AddUnderlay6).
var underlay6 = map[string]netip.Addr{"a": netip.MustParseAddr("2001:db8:ff::1"), "b": netip.MustParseAddr("2001:db8:ff::2")}

// AddUnderlay6 gives each gateway's uplink an IPv6 VTEP address instead
// (IPv6 is turned on for the uplink only; the VIFs stay without it), and
// makes ConfigureWith use it.
func (l *Lab) AddUnderlay6(ctx context.Context) error {
	for _, gw := range l.Gateways {
		for _, args := range [][]string{
			{"ip", "netns", "exec", gw.NS, "sysctl", "-qw", "net.ipv6.conf." + gw.Uplink + ".disable_ipv6=0"},
			{"ip", "-n", gw.NS, "addr", "add", underlay6[gw.Name].String() + "/64", "dev", gw.Uplink, "nodad"},
		} {
			if err := run(ctx, args...); err != nil {
				return err
			}
		}
	}
	// Turning IPv6 on gives each uplink a link-local address that is
	// tentative until duplicate address detection is over (1–2 s); until
	// then the kernel sends no Neighbor Solicitation for a remote VTEP
	// (it has no usable source address), so nothing resolves. Wait for
	// it: the lab is ready when its underlay is.
	for _, gw := range l.Gateways {
		if err := waitTentative(ctx, gw.NS, gw.Uplink); err != nil {
			return err
		}
	}
	l.underlay = underlay6
	return nil
}

// waitGlobalSettled waits until no global IPv6 address of dev in ns is
// tentative. An address added with nodad while its link is down stays
// tentative after the link comes up until the kernel's DAD work runs,
// which on a loaded machine can be after a test's first packet; the
// kernel drops what is sent to a tentative address. Link-local
// addresses, whose DAD takes 1–2 s, are not waited for.
func waitGlobalSettled(ctx context.Context, ns, dev string) error {
	return waitTentative(ctx, ns, dev, "scope", "global")
}

// waitTentative waits until no IPv6 address of dev in namespace ns (of
// those filter, `ip addr show` arguments, selects) is tentative
// (duplicate address detection over), for 10 s at most.
func waitTentative(ctx context.Context, ns, dev string, filter ...string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		args := append([]string{"-n", ns, "-6", "addr", "show", "dev", dev}, filter...)
		out, err := exec.CommandContext(ctx, "ip", append(args, "tentative")...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("lab: ip -n %s -6 addr show dev %s tentative: %v: %s", ns, dev, err, out)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s in %s keeps tentative IPv6 addresses:\n%s", dev, ns, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vtep is gateway gw's VTEP address in this lab.
func (l *Lab) vtep(gw string) netip.Addr {
	if l.underlay != nil {
		return l.underlay[gw]
	}
	return underlay[gw]
}

// RemoveUnderlay takes the VTEP addresses away again.
func (l *Lab) RemoveUnderlay(ctx context.Context) error { return l.underlayAddrs(ctx, "del") }

func (l *Lab) underlayAddrs(ctx context.Context, op string) error {
	for _, gw := range l.Gateways {
		if err := run(ctx, "ip", "-n", gw.NS, "addr", op, underlay[gw.Name].String()+"/24", "dev", gw.Uplink); err != nil {
			return err
		}
	}
	return nil
}

// ConfigureWith is Configure, over a VXLAN underlay when vxlan is true:
// the uplink gets --overlay vxlan, each tenant its VNI, and the FDB the
// peer VM's MAC behind the other gateway's VTEP.
func ConfigureWith(ctx context.Context, l *Lab, d *Daemon, mode string, w io.Writer, vxlan bool) ([]SAEntry, error) {
	return ConfigureEncap(ctx, l, d, mode, w, vxlan, "")
}

// ConfigureEncap is ConfigureWith with every SA added with
// --encapsulation encap ("": the flag left out, ESP; udp: ESP in UDP to
// 4500).
func ConfigureEncap(ctx context.Context, l *Lab, d *Daemon, mode string, w io.Writer, vxlan bool, encap string) ([]SAEntry, error) {
	var sas []SAEntry
	say := func(args ...string) error {
		if w != nil {
			fmt.Fprintf(w, "    $ vifsec %s\n", strings.Join(args, " "))
		}
		_, err := d.CLI(ctx, args...)
		return err
	}
	gw := d.GW
	other := map[string]string{"a": "b", "b": "a"}[gw.Name]
	uplink := []string{"uplink", "set", "--dev", gw.Uplink}
	if vxlan {
		uplink = append(uplink, "--overlay", "vxlan", "--vxlan-local", l.vtep(gw.Name).String())
	}
	if err := say(uplink...); err != nil {
		return nil, err
	}
	for _, vm := range gw.VMs {
		peer := l.VM(vm.Tenant, other)
		tenantAdd := []string{"tenant", "add", "--tenant", vm.Tenant}
		if vxlan {
			tenantAdd = append(tenantAdd, "--vni", fmt.Sprint(VNI(vm.Tenant)))
		}
		if err := say(tenantAdd...); err != nil {
			return nil, err
		}
		if vxlan {
			if err := say("overlay", "fdb", "add", "--tenant", vm.Tenant, "--mac", peer.MAC, "--remote", l.vtep(other).String()); err != nil {
				return nil, err
			}
		}
		if err := say("vm", "attach", "--vm", vm.Name, "--tenant", vm.Tenant, "--dev", vm.Dev, "--mac", vm.MAC,
			"--vlan", fmt.Sprint(vm.VLAN), "--ip", vm.IP6.String(), "--ip", vm.IP4.String()); err != nil {
			return nil, err
		}
		for _, fam := range []struct {
			v4            bool
			local, remote netip.Addr
			bits          string
		}{{false, vm.IP6, peer.IP6, "/128"}, {true, vm.IP4, peer.IP4, "/32"}} {
			fname := map[bool]string{false: "6", true: "4"}[fam.v4]
			outSPI, inSPI := demoSPI(gw.Name, fam.v4), demoSPI(other, fam.v4)
			outName, inName := vm.Tenant+"-out"+fname, vm.Tenant+"-in"+fname
			saSrc, saDst := fam.local, fam.remote
			inSrc, inDst := fam.remote, fam.local
			if mode == "tunnel" {
				// Flat L2 has no underlay: the tunnel endpoints are the
				// VMs' own addresses, as a host-to-host tunnel would be.
				saSrc, saDst, inSrc, inDst = fam.local, fam.remote, fam.remote, fam.local
			}
			for _, s := range []struct {
				name     string
				spi      uint32
				src, dst netip.Addr
				from     string
			}{{outName, outSPI, saSrc, saDst, gw.Name}, {inName, inSPI, inSrc, inDst, other}} {
				key := demoKey(vm.Tenant, s.spi)
				args := []string{"sa", "add", "--vm", vm.Name, "--sa-source", s.src.String(), "--sa-destination", s.dst.String(),
					"--sa-mode", mode, "--sa-spi", fmt.Sprintf("0x%x", s.spi), "--encryption-algorithm", "aes128-gcm",
					"--encryption-key", key, "--integrity-algorithm", "none", "--sa-name", s.name}
				if encap != "" {
					args = append(args, "--encapsulation", encap)
				}
				if err := say(args...); err != nil {
					return nil, err
				}
				sas = append(sas, SAEntry{Tenant: vm.Tenant, VLAN: vm.VLAN, Src: s.src, Dst: s.dst, SPI: s.spi, Key: key})
			}
			l, r := fam.local.String()+fam.bits, fam.remote.String()+fam.bits
			sps := [][]string{
				// Order matters (first match): the clear and discard
				// exceptions come before the catch-all ipsec policies.
				{"--sp-source", l, "--sp-destination", r, "--source-port", "any", "--destination-port", fmt.Sprint(ClearUDPPort), "--upper-layer-protocol", "udp", "--flow-direction", "out", "--action", "none", "--sp-mode", mode, "--sp-name", vm.Tenant + "-clear-out" + fname},
				{"--sp-source", r, "--sp-destination", l, "--source-port", "any", "--destination-port", fmt.Sprint(ClearUDPPort), "--upper-layer-protocol", "udp", "--flow-direction", "in", "--action", "none", "--sp-mode", mode, "--sp-name", vm.Tenant + "-clear-in" + fname},
				{"--sp-source", l, "--sp-destination", r, "--source-port", "any", "--destination-port", fmt.Sprint(DiscardTCPPort), "--upper-layer-protocol", "tcp", "--flow-direction", "out", "--action", "discard", "--sp-mode", mode, "--sp-name", vm.Tenant + "-telnet-out" + fname},
				{"--sp-source", l, "--sp-destination", r, "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "any", "--flow-direction", "out", "--action", "ipsec", "--sp-mode", mode, "--sa-name", outName, "--sp-name", vm.Tenant + "-esp-out" + fname},
				{"--sp-source", r, "--sp-destination", l, "--source-port", "any", "--destination-port", "any", "--upper-layer-protocol", "any", "--flow-direction", "in", "--action", "ipsec", "--sp-mode", mode, "--sa-name", inName, "--sp-name", vm.Tenant + "-esp-in" + fname},
			}
			for _, sp := range sps {
				if err := say(append([]string{"sp", "add", "--vm", vm.Name}, sp...)...); err != nil {
					return nil, err
				}
			}
		}
	}
	return sas, nil
}

// Capture runs tcpdump on an interface until stop is called.
type Capture struct {
	File    string
	cmd     *exec.Cmd
	once    sync.Once
	stderr  chan struct{} // closed when tcpdump's stderr is read to the end
	dropped int           // "N packets dropped by kernel", once stopped
}

// StartCapture captures gw's uplink into file.
func StartCapture(ctx context.Context, gw *Gateway, file string) (*Capture, error) {
	return StartCaptureOn(ctx, gw.NS, gw.Uplink, file)
}

// StartCaptureOn captures interface dev in namespace ns into file; filter,
// if given, is tcpdump's filter expression.
func StartCaptureOn(ctx context.Context, ns, dev, file string, filter ...string) (*Capture, error) {
	c := &Capture{File: file, stderr: make(chan struct{})}
	// A large buffer: the counts of a capture are evidence (Dropped).
	args := append([]string{"netns", "exec", ns, "tcpdump", "-i", dev, "--immediate-mode", "-U", "-n", "-s", "0", "-B", "8192", "-w", file}, filter...)
	c.cmd = exec.Command("ip", args...)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("tcpdump: %w", err)
	}
	// tcpdump says "listening on" once the capture is live, and how many
	// packets the kernel dropped when it ends.
	ready := make(chan struct{})
	go func() {
		defer close(c.stderr)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			line := sc.Text()
			if !once && strings.Contains(line, "listening on") {
				close(ready)
				once = true
			}
			if strings.HasSuffix(line, "dropped by kernel") { // "N packet(s) dropped by kernel"
				fmt.Sscan(line, &c.dropped)
			}
		}
		if !once {
			close(ready)
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
	}
	return c, nil
}

// Dropped is how many packets the kernel dropped before tcpdump read them
// (known once Stop returned): a capture with drops is no count of what
// crossed.
func (c *Capture) Dropped() int {
	c.Stop()
	return c.dropped
}

// Stop ends the capture and waits for tcpdump to flush. It is safe to
// call more than once (and from a deferred cleanup).
func (c *Capture) Stop() {
	c.once.Do(func() {
		time.Sleep(200 * time.Millisecond)
		_ = c.cmd.Process.Signal(os.Interrupt)
		<-c.stderr
		_ = c.cmd.Wait()
	})
}

// Flow is one traffic check of the demo.
type Flow struct {
	Tenant string
	Kind   string // ping6, ping4, tcp6, tcp4, udp6, udp4, clear-udp6, telnet6
	Dst    netip.Addr
	Want   bool // should it get through?
	Got    bool
	Err    string
}

// Traffic runs the demo's flows from gateway a's VMs to gateway b's.
func Traffic(ctx context.Context, l *Lab) []Flow {
	var flows []Flow
	for _, t := range Tenants {
		a, b := l.VM(t.Name, "a"), l.VM(t.Name, "b")
		for _, dst := range []netip.Addr{b.IP6, b.IP4} {
			fam := map[bool]string{true: "4", false: "6"}[dst.Is4()]
			out, err := Exec(ctx, a.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", dst.String())
			flows = append(flows, flow(t.Name, "ping"+fam, dst, true, err, out))
			err = TCPEcho(a.NS, b.NS, dst, 0, 64<<10)
			flows = append(flows, flow(t.Name, "tcp"+fam, dst, true, err, nil))
			err = UDPEcho(a.NS, b.NS, dst, 0)
			flows = append(flows, flow(t.Name, "udp"+fam, dst, true, err, nil))
		}
		err := UDPEcho(a.NS, b.NS, b.IP6, ClearUDPPort)
		flows = append(flows, flow(t.Name, "clear-udp6", b.IP6, true, err, nil))
		err = TCPEcho(a.NS, b.NS, b.IP6, DiscardTCPPort, 16)
		flows = append(flows, flow(t.Name, "telnet6", b.IP6, false, err, nil))
	}
	return flows
}

func flow(tenant, kind string, dst netip.Addr, want bool, err error, out []byte) Flow {
	f := Flow{Tenant: tenant, Kind: kind, Dst: dst, Want: want, Got: err == nil}
	if err != nil {
		f.Err = strings.TrimSpace(err.Error() + " " + string(out))
	}
	return f
}

// TCPEcho sends size bytes over TCP from srcNS to an echo server in dstNS
// listening on dst:port (0: any port) and checks they come back.
func TCPEcho(srcNS, dstNS string, dst netip.Addr, port uint16, size int) error {
	var ln net.Listener
	if err := InNS(dstNS, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(dst, port).String())
		return err
	}); err != nil {
		return err
	}
	served := make(chan struct{})
	defer func() { ln.Close(); <-served }()
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.Copy(c, c)
	}()
	var c net.Conn
	if err := InNS(srcNS, func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 3*time.Second)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i*7 + 3)
	}
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(msg); wrote <- err }()
	got := make([]byte, size)
	_, err := io.ReadFull(c, got)
	if werr := <-wrote; werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	if string(got) != string(msg) {
		return fmt.Errorf("echoed data differs")
	}
	return nil
}

// UDPEcho sends three datagrams from srcNS to an echo server in dstNS on
// dst:port (0: any port) and checks at least one answer.
func UDPEcho(srcNS, dstNS string, dst netip.Addr, port uint16) error {
	var srv net.PacketConn
	if err := InNS(dstNS, func() (err error) {
		srv, err = net.ListenPacket("udp", netip.AddrPortFrom(dst, port).String())
		return err
	}); err != nil {
		return err
	}
	done := make(chan struct{})
	defer func() { srv.Close(); <-done }()
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(buf[:n], from)
		}
	}()
	var c net.Conn
	if err := InNS(srcNS, func() (err error) {
		c, err = net.Dial("udp", srv.LocalAddr().String())
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	msg := []byte("vifsec-udp-echo")
	buf := make([]byte, 64)
	for i := 0; i < 3; i++ {
		c.Write(msg)
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == string(msg) {
			return nil
		}
	}
	return fmt.Errorf("no UDP echo from %s", srv.LocalAddr())
}

// Binaries returns the directory holding vifsecd and vifsec: $VIFSEC_BIN,
// else ./bin under the module root found from the working directory.
func Binaries() (string, error) {
	if d := os.Getenv("VIFSEC_BIN"); d != "" {
		return d, nil
	}
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bin"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory; set VIFSEC_BIN")
		}
		dir = parent
	}
}
