//go:build linux

// Command vifsec-lab runs vifsec's main job on the embedded default lab and
// prints what happened: two gateways in network namespaces, tenants acme and
// globex with the same addresses and the same SPIs, their traffic encrypted
// by vifsecd, the wire captured and checked. `make demo` runs it.
//
//	vifsec-lab [--mode transport|tunnel] [--verbose] [--keep-logs DIR]
//
// It removes every namespace, interface and process it made on exit, also
// on failure or Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vifsec/vifsec/examples/lab"
)

func main() {
	mode := flag.String("mode", "transport", "IPsec mode of the demo SAs: transport or tunnel")
	verbose := flag.Bool("verbose", false, "print every CLI command")
	keep := flag.String("keep-logs", "", "copy daemon logs and the capture into this directory")
	flag.Parse()
	if *mode != "transport" && *mode != "tunnel" {
		fmt.Fprintf(os.Stderr, "--mode: %q is not a mode; use transport or tunnel\n", *mode)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *mode, *verbose, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "\nvifsec-lab: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, mode string, verbose bool, keep string) (err error) {
	bin, err := lab.Binaries()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "vifsec-lab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	fmt.Printf("vifsec demo: two hypervisors, tenants acme (VLAN 100) and globex (VLAN 200)\n")
	fmt.Printf("             with the SAME addresses and the SAME SPIs (0x1000 ...), different keys, %s mode\n\n", mode)

	fmt.Printf("[1/5] lab: namespaces for 2 gateways + 4 VMs, veth VIFs, an uplink wire ... ")
	l, err := lab.Build(ctx, fmt.Sprintf("vl%d", os.Getpid()%10000))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
		fmt.Printf("      teardown: namespaces removed, daemons stopped\n")
	}()
	fmt.Println("ok")

	fmt.Printf("[2/5] vifsecd on each gateway ... ")
	var ds []*lab.Daemon
	defer func() {
		for _, d := range ds {
			d.Stop()
			if keep != "" {
				copyFile(d.Log, filepath.Join(keep, "vifsecd-"+d.GW.Name+".log"))
			}
		}
	}()
	for _, gw := range l.Gateways {
		d, err := lab.StartDaemon(ctx, bin, gw, filepath.Join(tmp, gw.Name))
		if err != nil {
			return err
		}
		ds = append(ds, d)
	}
	fmt.Println("ok")

	fmt.Printf("[3/5] configure with the vifsec CLI (esxcli syntax + --vm), e.g. on gateway a:\n")
	var sas []lab.SAEntry
	for i, d := range ds {
		var w *os.File
		if verbose || i == 0 {
			w = os.Stdout
		}
		printer := &firstN{w: w, n: 4, all: verbose}
		s, err := lab.Configure(ctx, l, d, mode, printer)
		if err != nil {
			return err
		}
		if i == 0 && !verbose {
			fmt.Printf("    ... %d commands per gateway (--verbose shows all)\n", printer.seen)
		}
		sas = append(sas, s...)
	}
	time.Sleep(300 * time.Millisecond) // VIF attach is asynchronous

	fmt.Printf("[4/5] traffic from gateway a's VMs to gateway b's, wire captured on both uplinks:\n")
	var caps []*lab.Capture
	var capFiles []string
	for _, gw := range l.Gateways {
		f := filepath.Join(tmp, "wire-"+gw.Name+".pcap")
		c, err := lab.StartCapture(ctx, gw, f)
		if err != nil {
			return err
		}
		defer c.Stop()
		caps, capFiles = append(caps, c), append(capFiles, f)
	}
	flows := lab.Traffic(ctx, l)
	for _, c := range caps {
		c.Stop()
		if keep != "" {
			copyFile(c.File, filepath.Join(keep, filepath.Base(c.File)))
		}
	}
	bad := 0
	for _, f := range flows {
		verdict := "ok"
		if f.Got != f.Want {
			verdict = "UNEXPECTED"
			bad++
		}
		what := map[bool]string{true: "passed", false: "blocked"}[f.Got]
		policy := "ESP"
		switch {
		case strings.HasPrefix(f.Kind, "clear"):
			policy = "policy none (clear)"
		case strings.HasPrefix(f.Kind, "telnet"):
			policy = "policy discard"
		}
		fmt.Printf("    %-7s %-11s -> %-16s %-8s %-20s %s\n", f.Tenant, f.Kind, f.Dst, what, policy, verdict)
		if verdict != "ok" && f.Err != "" {
			fmt.Printf("            %s\n", f.Err)
		}
	}

	fmt.Printf("[5/5] what the wire saw (tshark, independent of vifsec):\n")
	w, err := lab.Analyze(ctx, capFiles, sas)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(w.ESP))
	for k := range w.ESP {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("    %d frames: ESP %v\n", w.Frames, strings.Join(func() []string {
		var s []string
		for _, k := range keys {
			s = append(s, fmt.Sprintf("[%s]×%d", k, w.ESP[k]))
		}
		return s
	}(), " "))
	fmt.Printf("    clear: %d of the udp/%d flow (policy none), %d ARP/ND, %d telnet, %d other (leaks)\n",
		w.ClearUDP, lab.ClearUDPPort, w.Control, w.Telnet, len(w.Leaks))
	for _, t := range lab.Tenants {
		fmt.Printf("    tshark with only %s's keys decrypted %d of %s's %d ESP frames\n", t.Name, w.Decrypted[t.Name], t.Name, w.ESPByTenant[t.Name])
	}
	for _, leak := range w.Leaks {
		fmt.Printf("    LEAK: %s\n", leak)
		bad++
	}
	if w.Telnet > 0 {
		bad++
	}
	fmt.Printf("\n    $ vifsec show-ipsecsa        (gateway b)\n")
	out, err := ds[1].CLI(ctx, "show-ipsecsa")
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	fmt.Printf("    $ vifsec stats               (gateway b)\n")
	out, err = ds[1].CLI(ctx, "stats")
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	fmt.Printf("\n    done in %.1fs: %s\n", time.Since(start).Seconds(), map[bool]string{true: "everything as expected", false: fmt.Sprintf("%d UNEXPECTED results", bad)}[bad == 0])
	if bad > 0 {
		return fmt.Errorf("%d unexpected results", bad)
	}
	return nil
}

// firstN prints the first n lines it is given (all if all), counting the rest.
type firstN struct {
	w    *os.File
	n    int
	seen int
	all  bool
}

func (f *firstN) Write(p []byte) (int, error) {
	f.seen++
	if f.w != nil && (f.all || f.seen <= f.n) {
		return f.w.Write(p)
	}
	return len(p), nil
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	return b.String()
}

func copyFile(src, dst string) {
	b, err := os.ReadFile(src)
	if err == nil {
		os.MkdirAll(filepath.Dir(dst), 0o755)
		os.WriteFile(dst, b, 0o644)
	}
}
