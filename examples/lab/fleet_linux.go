package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// FleetLab is the fleet variant of the lab: any number of hypervisor
// namespaces ("gateways") whose uplinks join one Linux bridge in a wire
// namespace (802.1Q frames cross it untouched), and VMs placed on any
// gateway and moved between them as a live migration would (the VM's
// namespace stays; the host end of its veth moves to the new gateway).
//
//	VM web ─veth─ gateway b ─up0─┐
//	                             ├─ br0 (wire) ─ up0 ─ gateway c ─veth─ VM db
//	              gateway a ─up0─┘
type FleetLab struct {
	Prefix   string
	WireNS   string
	Gateways []*Gateway
	made     []string
}

// BuildFleet creates the wire and one gateway per name, each with an
// uplink "up0" on the bridge. On error, whatever was made is removed.
func BuildFleet(ctx context.Context, prefix string, names ...string) (l *FleetLab, err error) {
	l = &FleetLab{Prefix: prefix, WireNS: prefix + "wire"}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	if err := l.addNS(ctx, l.WireNS); err != nil {
		return nil, err
	}
	for _, s := range [][]string{
		{"ip", "netns", "exec", l.WireNS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "netns", "exec", l.WireNS, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "-n", l.WireNS, "link", "add", "br0", "type", "bridge", "ageing_time", "3000"},
		{"ip", "-n", l.WireNS, "link", "set", "br0", "up"},
	} {
		if err := run(ctx, s...); err != nil {
			return nil, err
		}
	}
	for _, g := range names {
		gw := &Gateway{Name: g, NS: prefix + "gw" + g, Uplink: "up0"}
		if err := l.addNS(ctx, gw.NS); err != nil {
			return nil, err
		}
		port := "p-" + g
		for _, s := range [][]string{
			{"ip", "netns", "exec", gw.NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
			{"ip", "netns", "exec", gw.NS, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
			{"ip", "link", "add", gw.Uplink, "netns", gw.NS, "type", "veth", "peer", "name", port, "netns", l.WireNS},
			{"ip", "-n", l.WireNS, "link", "set", port, "master", "br0", "up"},
			{"ip", "-n", gw.NS, "link", "set", gw.Uplink, "up"},
			// The wire is ours: frames vifsec writes must be whole and checksummed.
			{"ip", "netns", "exec", gw.NS, "ethtool", "-K", gw.Uplink, "tx", "off", "tso", "off", "gso", "off"},
		} {
			if err := run(ctx, s...); err != nil {
				return nil, err
			}
		}
		l.Gateways = append(l.Gateways, gw)
	}
	return l, nil
}

// Gateway returns the gateway named name, or nil.
func (l *FleetLab) Gateway(name string) *Gateway {
	for _, g := range l.Gateways {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// AddVM creates a VM namespace with eth0 (mac, ip6/64, ip4/24) whose host
// end, named "v"+name, is in gw's namespace.
func (l *FleetLab) AddVM(ctx context.Context, name, tenant string, gw *Gateway, mac string, vlan uint16, ip6, ip4 netip.Addr) (*VM, error) {
	vm := &VM{Name: name, Tenant: tenant, Gateway: gw, NS: l.Prefix + "vm" + name, Dev: "v" + name, MAC: mac, VLAN: vlan, IP6: ip6, IP4: ip4}
	if len(vm.Dev) > 15 {
		return nil, fmt.Errorf("lab: VM name %q too long for an interface name", name)
	}
	if err := l.addNS(ctx, vm.NS); err != nil {
		return nil, err
	}
	for _, s := range [][]string{
		{"ip", "link", "add", "eth0", "netns", vm.NS, "address", vm.MAC, "type", "veth", "peer", "name", vm.Dev, "netns", gw.NS},
		{"ip", "-n", vm.NS, "link", "set", "lo", "up"},
		{"ip", "-n", vm.NS, "addr", "add", vm.IP6.String() + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", vm.NS, "addr", "add", vm.IP4.String() + "/24", "dev", "eth0"},
		{"ip", "-n", vm.NS, "link", "set", "eth0", "up"},
		{"ip", "-n", gw.NS, "link", "set", vm.Dev, "up"},
	} {
		if err := run(ctx, s...); err != nil {
			return nil, err
		}
	}
	gw.VMs = append(gw.VMs, vm)
	return vm, nil
}

// Migrate moves vm's host end to gateway to (the VM keeps running in its
// namespace; only where it is plugged changes).
func (l *FleetLab) Migrate(ctx context.Context, vm *VM, to *Gateway) error {
	from := vm.Gateway
	for _, s := range [][]string{
		{"ip", "-n", from.NS, "link", "set", vm.Dev, "netns", to.NS},
		{"ip", "-n", to.NS, "link", "set", vm.Dev, "up"},
	} {
		if err := run(ctx, s...); err != nil {
			return err
		}
	}
	for i, v := range from.VMs {
		if v == vm {
			from.VMs = append(from.VMs[:i], from.VMs[i+1:]...)
			break
		}
	}
	to.VMs = append(to.VMs, vm)
	vm.Gateway = to
	return nil
}

func (l *FleetLab) addNS(ctx context.Context, ns string) error {
	if err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	l.made = append(l.made, ns)
	return nil
}

// Close deletes every namespace the lab made. It is safe to call more
// than once.
func (l *FleetLab) Close() error {
	inner := &Lab{made: l.made}
	l.made = nil
	return inner.Close()
}

// ConfigureFleetVM writes, through daemon d with --host set to vm's
// gateway, the SAs and SPs that protect vm's traffic with peer (both
// directions, IPv6 and IPv4, transport mode, AES-GCM-128), as an operator
// at any host of the fleet would. outSPI is the SPI of vm's outbound
// IPv6 SA (IPv4: +1); peer's are inSPI and inSPI+1. The SA names start
// with vm's name. It returns the SAs for tshark.
func ConfigureFleetVM(ctx context.Context, d *Daemon, vm, peer *VM, outSPI, inSPI uint32, w io.Writer) ([]SAEntry, error) {
	host := vm.Gateway.Name
	say := func(args ...string) error {
		args = append([]string{"--host", host}, args...)
		if w != nil {
			fmt.Fprintf(w, "    $ vifsec %s\n", strings.Join(args, " "))
		}
		_, err := d.CLI(ctx, args...)
		return err
	}
	var sas []SAEntry
	for _, fam := range []struct {
		v4            bool
		local, remote netip.Addr
		bits          string
	}{{false, vm.IP6, peer.IP6, "/128"}, {true, vm.IP4, peer.IP4, "/32"}} {
		f, off := "6", uint32(0)
		if fam.v4 {
			f, off = "4", 1
		}
		out, in := vm.Name+"-out"+f, vm.Name+"-in"+f
		for _, s := range []struct {
			name     string
			spi      uint32
			src, dst netip.Addr
		}{{out, outSPI + off, fam.local, fam.remote}, {in, inSPI + off, fam.remote, fam.local}} {
			key := demoKey(vm.Tenant, s.spi)
			if err := say("sa", "add", "--vm", vm.Name, "--sa-source", s.src.String(), "--sa-destination", s.dst.String(),
				"--sa-mode", "transport", "--sa-spi", fmt.Sprintf("0x%x", s.spi), "--encryption-algorithm", "aes128-gcm",
				"--encryption-key", key, "--integrity-algorithm", "none", "--sa-name", s.name); err != nil {
				return nil, err
			}
			sas = append(sas, SAEntry{Tenant: vm.Tenant, VLAN: vm.VLAN, Src: s.src, Dst: s.dst, SPI: s.spi, Key: key})
		}
		loc, rem := fam.local.String()+fam.bits, fam.remote.String()+fam.bits
		for _, sp := range [][]string{
			{"--sp-source", loc, "--sp-destination", rem, "--flow-direction", "out", "--sa-name", out, "--sp-name", vm.Name + "-esp-out" + f},
			{"--sp-source", rem, "--sp-destination", loc, "--flow-direction", "in", "--sa-name", in, "--sp-name", vm.Name + "-esp-in" + f},
		} {
			args := append([]string{"sp", "add", "--vm", vm.Name, "--source-port", "any", "--destination-port", "any",
				"--upper-layer-protocol", "any", "--action", "ipsec", "--sp-mode", "transport"}, sp...)
			if err := say(args...); err != nil {
				return nil, err
			}
		}
	}
	return sas, nil
}

// Probe measures the interruption of a flow: from src's namespace it
// sends a UDP datagram every Interval to an echo server in dst's
// namespace, and records when each echo comes back.
type Probe struct {
	Interval time.Duration

	mu      sync.Mutex
	replies []time.Time
	sent    int
	stop    chan struct{}
	done    chan struct{}
	conn    net.Conn
	srv     net.PacketConn
}

// StartProbe starts a probe from src to dst's IPv6 address.
func StartProbe(src, dst *VM, interval time.Duration) (*Probe, error) {
	p := &Probe{Interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	if err := InNS(dst.NS, func() (err error) {
		p.srv, err = net.ListenPacket("udp", netip.AddrPortFrom(dst.IP6, 0).String())
		return err
	}); err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := p.srv.ReadFrom(buf)
			if err != nil {
				return
			}
			p.srv.WriteTo(buf[:n], from)
		}
	}()
	if err := InNS(src.NS, func() (err error) {
		p.conn, err = net.Dial("udp", p.srv.LocalAddr().String())
		return err
	}); err != nil {
		p.srv.Close()
		return nil, err
	}
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := p.conn.Read(buf); err != nil {
				return
			}
			p.mu.Lock()
			p.replies = append(p.replies, time.Now())
			p.mu.Unlock()
		}
	}()
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.conn.Write([]byte("vifsec-probe"))
				p.mu.Lock()
				p.sent++
				p.mu.Unlock()
			}
		}
	}()
	return p, nil
}

// Stop ends the probe and returns how many datagrams were sent, how many
// echoes came back, and the longest time without an echo between from
// and the last echo (the interruption around an event at from).
func (p *Probe) Stop(from time.Time) (sent, got int, gap time.Duration) {
	end := time.Now()
	time.Sleep(3 * p.Interval) // the last echoes
	close(p.stop)
	<-p.done
	p.conn.Close()
	p.srv.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := from
	for _, r := range p.replies {
		if r.Before(from) {
			continue
		}
		gap = max(gap, r.Sub(prev))
		prev = r
	}
	if prev.Before(end) {
		gap = max(gap, end.Sub(prev)) // not back by the end
	}
	return p.sent, len(p.replies), gap
}

// Replies is the number of echoes so far.
func (p *Probe) Replies() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.replies)
}

// ForwardLoopback makes TCP ports of 127.0.0.1 in the test's own network
// namespace reachable at 127.0.0.1 inside namespace ns (as if the
// namespaces shared their loopback): a vifsecd in a gateway namespace
// reaches etcd members that listen on the host's 127.0.0.1. Connections
// are relayed byte for byte; when the member goes away, so do its relayed
// connections. stop closes every listener and connection.
func ForwardLoopback(ctx context.Context, ns string, ports []int) (stop func(), err error) {
	if err := run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var closers []io.Closer
	track := func(c io.Closer) bool {
		mu.Lock()
		defer mu.Unlock()
		if closers == nil {
			c.Close()
			return false
		}
		closers = append(closers, c)
		return true
	}
	closers = []io.Closer{}
	stop = func() {
		mu.Lock()
		cs := closers
		closers = nil
		mu.Unlock()
		for _, c := range cs {
			c.Close()
		}
	}
	for _, port := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		var ln net.Listener
		if err := InNS(ns, func() (err error) {
			ln, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			stop()
			return nil, err
		}
		track(ln)
		go func() {
			for {
				in, err := ln.Accept()
				if err != nil {
					return
				}
				out, err := net.Dial("tcp", addr) // this goroutine is in the test's namespace
				if err != nil {
					in.Close()
					continue
				}
				if !track(in) || !track(out) {
					in.Close()
					out.Close()
					return
				}
				go func() { io.Copy(out, in); out.Close(); in.Close() }()
				go func() { io.Copy(in, out); out.Close(); in.Close() }()
			}
		}()
	}
	return stop, nil
}

// FirstAfter is the time of the first echo after t (zero if none).
func (p *Probe) FirstAfter(t time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.replies {
		if r.After(t) {
			return r
		}
	}
	return time.Time{}
}
