package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/vifsec/vifsec/internal/bench/ikebench"
)

// runIKE is `vifsec-bench ike`: IKE SA setups per second between two
// engines, in memory and over UDP (two namespaces joined by a veth pair,
// or the loopback), and the heap per established IKE SA. See
// internal/bench/ikebench for the method.
func runIKE(args []string) error {
	fs := flag.NewFlagSet("ike", flag.ExitOnError)
	n := fs.Int("n", 10000, "setups per round with a PSK")
	nCerts := fs.Int("n-certs", 4000, "setups per round with ECDSA certificates")
	conc := fs.Int("concurrency", 64, "setups in flight")
	rounds := fs.Int("rounds", 3, "rounds per suite and network; the median is reported")
	netFlag := fs.String("net", "auto", "UDP between: netns (two namespaces and a veth pair; root), loopback (127.0.0.1 and 127.0.0.2), or auto (netns, else loopback)")
	memSAs := fs.Int("mem-sas", 2000, "IKE SAs established for the memory figure")
	fs.Parse(args)
	if *n <= 0 || *nCerts <= 0 || *conc <= 0 || *rounds <= 0 || *memSAs <= 0 {
		return errors.New("-n, -n-certs, -concurrency, -rounds and -mem-sas: give positive numbers")
	}
	var udp ikebench.Network
	note := ""
	switch *netFlag {
	case "netns", "auto":
		nw, err := ikebench.Netns()
		if err == nil {
			// The namespaces go also when the run is interrupted.
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			go func() {
				<-sig
				nw.Close()
				os.Exit(1)
			}()
			defer nw.Close()
			udp = nw
			break
		}
		if *netFlag == "netns" {
			return fmt.Errorf("-net netns: %w", err)
		}
		note = fmt.Sprintf(" (netns not available: %v)", err)
		fallthrough
	case "loopback":
		nw, err := ikebench.Loopback()
		if err != nil {
			return err
		}
		udp = nw
	default:
		return fmt.Errorf("-net %q: use auto, netns or loopback", *netFlag)
	}
	a, b, port := udp.Addrs()
	fmt.Printf("# vifsec-bench ike: %s/%s GOMAXPROCS=%d %s; %s %v <-> %v port %d%s; %d in flight; median of %d rounds; one goroutine per engine\n",
		runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.Version(), udp.Name(), a, b, port, note, *conc, *rounds)
	summary := []string{}
	for _, s := range ikebench.Suites {
		count := *n
		if s.Certs {
			count = *nCerts
		}
		var mem, sock []float64
		retrans := 0
		var wire float64
		for range *rounds {
			// Interleaved, so both see the same noise of a shared machine.
			r, err := ikebench.Setups(ikebench.InMemory(), s, count, *conc)
			if err != nil {
				return err
			}
			mem = append(mem, r.PerSecond())
			wire = r.BytesPerSetup()
			r, err = ikebench.Setups(udp, s, count, *conc)
			if err != nil {
				return err
			}
			sock = append(sock, r.PerSecond())
			retrans += r.Retransmits
		}
		mm, ms := median(mem), median(sock)
		fmt.Printf("ike-setup %s in-memory n=%d setups_per_s=%.0f wire_bytes_per_setup=%.0f rounds=%s\n", s.Name, count, mm, wire, joinRates(mem))
		fmt.Printf("ike-setup %s %s n=%d setups_per_s=%.0f ratio_to_in_memory=%.2f retransmits=%d rounds=%s\n",
			s.Name, strings.ReplaceAll(udp.Name(), " ", "-"), count, ms, ms/mm, retrans, joinRates(sock))
		summary = append(summary, fmt.Sprintf("%s_setups_per_s=%.0f", s.Name, ms), fmt.Sprintf("%s_wire_bytes_per_setup=%.0f", s.Name, wire))
	}
	for _, s := range ikebench.Suites {
		m, err := ikebench.Memory(s, *memSAs, *conc)
		if err != nil {
			return err
		}
		fmt.Printf("ike-memory %s sas=%d bytes_per_ike_sa=%.0f bytes_per_pair=%.0f initiator_policy_bytes=%.0f\n",
			s.Name, m.N, m.PerSA(), m.PairBytes, m.PolicyBytes)
		summary = append(summary, fmt.Sprintf("%s_bytes_per_ike_sa=%.0f", s.Name, m.PerSA()))
	}
	fmt.Printf("ike-summary %s\n", strings.Join(summary, " "))
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func joinRates(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(out, ",")
}
