package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wireguard-go as a routed gateway, the benchmarks' point of comparison
// for a userspace tunnel: in each gateway namespace wireguard-go runs a
// TUN, `wg` (wireguard-tools) keys it with the other gateway as its peer
// over the uplink's underlay address, and the gateway's kernel forwards
// between the VMs' veths and the TUN. The VMs keep their addresses and
// on-link /24: the gateway answers ARP for the remote VMs (proxy_arp) and
// routes each VM's /32 to its veth or to the tunnel.

// WireGuardPort is the UDP port both wireguard-go instances listen on.
const WireGuardPort = 51820

// wgSocketDir is where wireguard-go puts its UAPI socket (one per
// interface name, shared by every namespace: names must be unique).
const wgSocketDir = "/var/run/wireguard"

// WireGuard is wireguard-go running on both gateways. Close undoes all.
type WireGuard struct {
	Ifname map[string]string // gateway name -> TUN interface name
	MTU    int
	procs  map[string]*exec.Cmd
	exited map[string]chan error
	undo   []func() error
	flush  []string // the VMs' namespaces
	logs   []string
}

// StartWireGuard runs bin (wireguard-go) on the TUN of each gateway, with
// keys and logs under dir, TUN MTU mtu, and routes vms (each needs its
// tenant's VM on the other gateway, with addresses no other VM routed
// here has; give the VMs of one gateway only) through the tunnel. IPv4 only: the gateways have no IPv6.
func StartWireGuard(ctx context.Context, l *Lab, bin, dir string, mtu int, vms []*VM) (w *WireGuard, err error) {
	w = &WireGuard{MTU: mtu, Ifname: map[string]string{}, procs: map[string]*exec.Cmd{}, exited: map[string]chan error{}}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return w, err
	}
	for _, gw := range l.Gateways {
		if err := RemoveGuards(ctx, gw); err != nil {
			return w, err
		}
	}
	if err := l.AddUnderlay(ctx); err != nil {
		return w, err
	}
	w.undo = append(w.undo, func() error { return l.RemoveUnderlay(context.Background()) })
	pub := map[string]string{}
	for _, gw := range l.Gateways {
		key, err := exec.CommandContext(ctx, "wg", "genkey").Output()
		if err != nil {
			return w, fmt.Errorf("wireguard: wg genkey: %w", err)
		}
		keyFile := filepath.Join(dir, gw.Name+".key")
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			return w, err
		}
		cmd := exec.CommandContext(ctx, "wg", "pubkey")
		cmd.Stdin = strings.NewReader(string(key))
		p, err := cmd.Output()
		if err != nil {
			return w, fmt.Errorf("wireguard: wg pubkey: %w", err)
		}
		pub[gw.Name] = strings.TrimSpace(string(p))
		w.Ifname[gw.Name] = l.Prefix + "wg" + gw.Name
	}
	for _, gw := range l.Gateways {
		if err := w.start(ctx, bin, dir, gw); err != nil {
			return w, err
		}
	}
	for _, gw := range l.Gateways {
		other := l.Gateways[0]
		if other == gw {
			other = l.Gateways[1]
		}
		ifn := w.Ifname[gw.Name]
		var remote, local []string
		for _, vm := range vms {
			peer := l.VM(vm.Tenant, map[string]string{"a": "b", "b": "a"}[vm.Gateway.Name])
			if peer == nil {
				return w, fmt.Errorf("wireguard: no %s VM on the other gateway", vm.Tenant)
			}
			for _, v := range []*VM{vm, peer} {
				if gw == l.Gateways[0] {
					w.flush = append(w.flush, v.NS)
				}
				if v.Gateway == gw {
					local = append(local, v.IP4.String(), v.Dev)
				} else {
					remote = append(remote, v.IP4.String()+"/32")
				}
			}
		}
		if out, err := Exec(ctx, gw.NS, "wg", "set", ifn, "private-key", filepath.Join(dir, gw.Name+".key"),
			"listen-port", strconv.Itoa(WireGuardPort), "peer", pub[other.Name],
			"endpoint", netip.AddrPortFrom(UnderlayAddr(other.Name), WireGuardPort).String(),
			"allowed-ips", strings.Join(remote, ",")); err != nil {
			return w, fmt.Errorf("wireguard: wg set %s in %s: %v: %s", ifn, gw.NS, err, strings.TrimSpace(string(out)))
		}
		steps := [][]string{
			{"ip", "-n", gw.NS, "link", "set", ifn, "mtu", strconv.Itoa(mtu), "up"},
			{"ip", "netns", "exec", gw.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		}
		for _, r := range remote {
			steps = append(steps, []string{"ip", "-n", gw.NS, "route", "add", r, "dev", ifn})
		}
		for i := 0; i < len(local); i += 2 {
			steps = append(steps,
				[]string{"ip", "-n", gw.NS, "route", "add", local[i] + "/32", "dev", local[i+1]},
				[]string{"ip", "netns", "exec", gw.NS, "sysctl", "-qw", "net.ipv4.conf." + local[i+1] + ".proxy_arp=1"})
		}
		for _, s := range steps {
			if err := run(ctx, s...); err != nil {
				return w, err
			}
		}
		ns := gw.NS
		w.undo = append(w.undo, func() error {
			// The routes go with the TUN and the veths stay; what the
			// gateway's kernel was asked to do is undone.
			errs := []error{run(context.Background(), "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")}
			for i := 0; i < len(local); i += 2 {
				errs = append(errs,
					run(context.Background(), "ip", "-n", ns, "route", "del", local[i]+"/32", "dev", local[i+1]),
					run(context.Background(), "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf."+local[i+1]+".proxy_arp=0"))
			}
			return errors.Join(errs...)
		})
	}
	// The VMs may still hold each other's MACs from a bridged path: they
	// must ARP again, for the gateways' MACs.
	for _, ns := range w.flush {
		if err := run(ctx, "ip", "-n", ns, "neigh", "flush", "all"); err != nil {
			return w, err
		}
	}
	return w, nil
}

// start runs wireguard-go in the foreground in gw's namespace and waits
// for its UAPI socket.
func (w *WireGuard) start(ctx context.Context, bin, dir string, gw *Gateway) error {
	ifn := w.Ifname[gw.Name]
	sock := filepath.Join(wgSocketDir, ifn+".sock")
	if _, err := os.Stat(sock); err == nil {
		return fmt.Errorf("wireguard: %s exists: another wireguard-go runs %s", sock, ifn)
	}
	logPath := filepath.Join(dir, "wireguard-go-"+gw.Name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	w.logs = append(w.logs, logPath)
	cmd := exec.Command("ip", "netns", "exec", gw.NS, bin, "-f", ifn)
	cmd.Env = append(os.Environ(), "WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("wireguard: %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	w.procs[gw.Name], w.exited[gw.Name] = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("wireguard-go on gateway %s exited: %v\n%s", gw.Name, err, log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wireguard-go on gateway %s: no %s after 10s", gw.Name, sock)
		}
	}
}

// PIDs returns the wireguard-go process of each gateway (`ip netns exec`
// execs in place, so it is the process started).
func (w *WireGuard) PIDs() map[string]int {
	pids := map[string]int{}
	for g, c := range w.procs {
		pids[g] = c.Process.Pid
	}
	return pids
}

// TxBytes returns what gateway gw's wireguard-go sent to its peer, as
// `wg show IF transfer` counts it (the peer's received bytes column is
// the other direction).
func (w *WireGuard) TxBytes(ctx context.Context, gw *Gateway) (uint64, error) {
	out, err := Exec(ctx, gw.NS, "wg", "show", w.Ifname[gw.Name], "transfer")
	if err != nil {
		return 0, fmt.Errorf("wireguard: wg show transfer in %s: %v: %s", gw.NS, err, strings.TrimSpace(string(out)))
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return 0, fmt.Errorf("wireguard: wg show transfer in %s: %q", gw.NS, out)
	}
	return strconv.ParseUint(f[2], 10, 64)
}

// Close stops wireguard-go (SIGTERM, SIGKILL after 5 s), undoes the
// gateways' forwarding, and flushes the VMs' neighbour caches (they hold
// the gateways' proxy-ARP answers). It returns an unclean exit.
func (w *WireGuard) Close() error {
	var errs []error
	for g, c := range w.procs {
		_ = c.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-w.exited[g]:
			if err != nil {
				errs = append(errs, fmt.Errorf("wireguard-go on gateway %s: %v", g, err))
			}
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			<-w.exited[g]
			errs = append(errs, fmt.Errorf("wireguard-go on gateway %s ignored SIGTERM for 5s; killed", g))
		}
	}
	w.procs = nil
	for i := len(w.undo) - 1; i >= 0; i-- {
		errs = append(errs, w.undo[i]())
	}
	w.undo = nil
	for _, ns := range w.flush {
		errs = append(errs, run(context.Background(), "ip", "-n", ns, "neigh", "flush", "all"))
	}
	w.flush = nil
	return errors.Join(errs...)
}

// Logs are wireguard-go's log files, one per gateway.
func (w *WireGuard) Logs() []string { return w.logs }
