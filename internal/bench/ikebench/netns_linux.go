//go:build linux

package ikebench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/vifsec/vifsec/vif"
)

// NetnsPair is two network namespaces joined by a veth pair: A at
// 192.0.2.1, B at 192.0.2.2 (RFC 5737), IKE on port 500 in each.
type NetnsPair struct {
	a, b string // namespace names
}

// Netns makes the two namespaces and the veth pair between them (root
// and the ip command needed). Close removes them (and the veth with them).
func Netns() (*NetnsPair, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("ikebench: network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("ikebench: network namespaces need the ip command (iproute2): %w", err)
	}
	pid := os.Getpid()
	n := &NetnsPair{a: fmt.Sprintf("vifsec-ikebench-%d-a", pid), b: fmt.Sprintf("vifsec-ikebench-%d-b", pid)}
	steps := [][]string{
		{"netns", "add", n.a},
		{"netns", "add", n.b},
		{"-n", n.a, "link", "add", "ikb0", "type", "veth", "peer", "name", "ikb1", "netns", n.b},
		{"-n", n.a, "addr", "add", "192.0.2.1/24", "dev", "ikb0"},
		{"-n", n.b, "addr", "add", "192.0.2.2/24", "dev", "ikb1"},
		{"-n", n.a, "link", "set", "ikb0", "up"},
		{"-n", n.b, "link", "set", "ikb1", "up"},
		{"-n", n.a, "link", "set", "lo", "up"},
		{"-n", n.b, "link", "set", "lo", "up"},
	}
	for _, st := range steps {
		if out, err := exec.Command("ip", st...).CombinedOutput(); err != nil {
			n.Close()
			return nil, fmt.Errorf("ikebench: ip %s: %v: %s", strings.Join(st, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return n, nil
}

func (n *NetnsPair) Name() string { return "netns+veth UDP" }

func (n *NetnsPair) Addrs() (netip.Addr, netip.Addr, uint16) {
	return netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), 500
}

func (n *NetnsPair) Open() (Endpoint, Endpoint, error) {
	a, b, port := n.Addrs()
	in := func(ns string) func(netip.AddrPort) (net.PacketConn, error) {
		return func(addr netip.AddrPort) (net.PacketConn, error) { return vif.ListenUDP(ns, addr) }
	}
	return openPair(in(n.a), in(n.b), netip.AddrPortFrom(a, port), netip.AddrPortFrom(b, port))
}

// Close deletes the namespaces; deleting A's removes the veth pair.
func (n *NetnsPair) Close() error {
	var errs []error
	for _, ns := range []string{n.a, n.b} {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", ns, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}
