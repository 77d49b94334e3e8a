// Command vifsec-bench prints vifsec's performance figures, one line per
// measurement, for `make bench-esp`, `make bench-sadb` and `make bench-ike`:
//
//	vifsec-bench esp  [-benchtime 1s] [-suites all|NAME,...] [-sizes 64,512,...]
//	vifsec-bench sadb [-benchtime 1s] [-sas 1000000]
//	vifsec-bench ike  [-n 10000] [-n-certs 4000] [-concurrency 64] [-rounds 3] [-net auto|netns|loopback] [-mem-sas 2000]
//
// It runs the benchmark bodies of internal/bench/espbench and
// internal/bench/sadbbench through testing.Benchmark, in one process and
// one goroutine (so "per core" figures are per goroutine); ike runs
// internal/bench/ikebench (two engines, one goroutine each). It reports; it
// never judges: timing goals are read by people, not asserted, because
// the machines are noisy shared VMs.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vifsec/vifsec/internal/bench/espbench"
	"github.com/vifsec/vifsec/internal/bench/sadbbench"
	"github.com/vifsec/vifsec/sa/satest"
)

func usage() {
	fmt.Fprintf(os.Stderr, "usage: vifsec-bench esp|sadb|ike [flags]; vifsec-bench esp -h for the flags\n")
	os.Exit(2)
}

func main() {
	testing.Init() // registers -test.benchtime, which testing.Benchmark reads
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "esp":
		err = runESP(os.Args[2:])
	case "sadb":
		err = runSADB(os.Args[2:])
	case "datapath":
		err = runDatapath(os.Args[2:]) // datapath.go
	case "ike":
		err = runIKE(os.Args[2:]) // ike.go
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vifsec-bench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func setBenchtime(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("-benchtime %v: give a positive duration such as 1s", d)
	}
	return flag.Set("test.benchtime", d.String())
}

func runESP(args []string) error {
	fs := flag.NewFlagSet("esp", flag.ExitOnError)
	benchtime := fs.Duration("benchtime", time.Second, "measuring time of each benchmark (four per suite and size)")
	suites := fs.String("suites", "default", `"default" (the README's seven), "all", or comma-separated names such as aes128-gcm,aes128-cbc/hmac-sha2-256`)
	sizes := fs.String("sizes", "64,512,1400,9000", "comma-separated UDP payload sizes in bytes")
	fs.Parse(args)
	if err := setBenchtime(*benchtime); err != nil {
		return err
	}
	sel, err := pickSuites(*suites)
	if err != nil {
		return err
	}
	var szs []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 65000 {
			return fmt.Errorf("-sizes: %q is not a payload size; use bytes from 0 to 65000, comma-separated", f)
		}
		szs = append(szs, n)
	}
	fmt.Printf("# vifsec-bench esp: %s/%s GOMAXPROCS=%d %s, transport mode IPv6, benchtime %v, 1 goroutine\n",
		runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.Version(), *benchtime)
	var gcm64 *espbench.Result
	for _, s := range sel {
		for _, n := range szs {
			r := espbench.Run(s, n)
			fmt.Println(r)
			if espbench.Name(s) == "aes128-gcm" && n == 64 {
				gcm64 = &r
			}
		}
	}
	if gcm64 != nil && gcm64.EncapNs > 0 && gcm64.DecapNs > 0 {
		fmt.Printf("esp-summary aes128-gcm 64 encap_mpps_per_core=%.2f decap_mpps_per_core=%.2f\n", 1e3/gcm64.EncapNs, 1e3/gcm64.DecapNs)
	}
	return nil
}

func pickSuites(spec string) ([]satest.Suite, error) {
	switch spec {
	case "default":
		return espbench.DefaultSuites(), nil
	case "all":
		return satest.Suites(), nil
	}
	byName := map[string]satest.Suite{}
	var names []string
	for _, s := range satest.Suites() {
		byName[espbench.Name(s)] = s
		names = append(names, espbench.Name(s))
	}
	var out []satest.Suite
	for _, n := range strings.Split(spec, ",") {
		s, ok := byName[strings.TrimSpace(n)]
		if !ok {
			return nil, fmt.Errorf("-suites: %q is not a suite; use default, all, or names from: %s", n, strings.Join(names, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

func runSADB(args []string) error {
	fs := flag.NewFlagSet("sadb", flag.ExitOnError)
	benchtime := fs.Duration("benchtime", time.Second, "measuring time of each lookup benchmark")
	n := fs.Int("sas", 1000000, "number of SAs in the database (a multiple of 4)")
	batch := fs.Int("batch", 100000, "SAs per DB.Apply while loading")
	fs.Parse(args)
	if err := setBenchtime(*benchtime); err != nil {
		return err
	}
	if *batch <= 0 {
		return fmt.Errorf("-batch %d: give a positive number of SAs per Apply", *batch)
	}
	start := time.Now()
	f, err := sadbbench.Build(*n, *batch, 1)
	if err != nil {
		return err
	}
	fmt.Printf("# vifsec-bench sadb: %s/%s GOMAXPROCS=%d %s, %d aes128-gcm inbound SAs (4 per VM) loaded in %v, benchtime %v, 1 goroutine\n",
		runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.Version(), *n, time.Since(start).Round(time.Millisecond), *benchtime)
	for _, l := range sadbbench.Run(f).Lines() {
		fmt.Println(l)
	}
	runtime.KeepAlive(f)
	return nil
}
