//go:build linux

// Command bench-fleet measures the fleet store at one host's scale: it
// starts an etcd member (Debian's etcd-server) on 127.0.0.1 and one
// vifsecd on it (--store etcd://..., in this network namespace; its VMs'
// interfaces do not exist, so the data path attaches nothing and the
// figures are the control plane's), writes N VM bindings with S SAs each
// for that host straight into etcd (sealed, in transactions of --batch
// records from --writers writers, as a provisioning system would), and
// reports:
//
//	fleet-bench write records=30001 txns=301 seconds=S records_per_s=R txns_per_s=T
//	fleet-bench converge vms=10000 sas=20000 seconds_from_start=S seconds_after_last_write=S
//	fleet-bench one-more-sa converge_ms=M
//	fleet-bench daemon rss_kib=R hwm_kib=H
//	fleet-bench etcd db_bytes=B value_bytes_avg=V key_bytes_avg=K
//
// The records are made by the daemon's own code (a daemon on an in-memory
// store adds them, with all its checks), so they are exactly what `vifsec
// vm attach` and `sa add` would store. Everything started is stopped on
// exit (by PID), also on failure and Ctrl-C.
//
//	bench-fleet [--vms 10000] [--sas-per-vm 2] [--batch 100] [--writers 4] [--bin DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/examples/lab"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/internal/store/etcd"
	"github.com/vifsec/vifsec/internal/store/etcd/etcdtest"
	"github.com/vifsec/vifsec/internal/store/storetest"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench-fleet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	vms := flag.Int("vms", 10000, "VM bindings")
	perVM := flag.Int("sas-per-vm", 2, "SAs per VM")
	batch := flag.Int("batch", 100, "records per etcd transaction (etcd --max-txn-ops is 128)")
	writers := flag.Int("writers", 4, "concurrent writers")
	binDir := flag.String("bin", "", "directory of vifsecd (default: $VIFSEC_BIN or ./bin)")
	flag.Parse()
	if *batch < 1 || *batch > 120 {
		return errors.New("--batch: use 1-120 (a transaction also writes the host's guard and member keys; etcd allows 128 ops)")
	}
	if *binDir == "" {
		var err error
		if *binDir, err = lab.Binaries(); err != nil {
			return err
		}
	}
	if !etcdtest.Available() {
		return fmt.Errorf("needs %s (apt-get install etcd-server)", etcdtest.Binary())
	}
	dir, err := os.MkdirTemp("", "bench-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The records, made and checked by the daemon's own code.
	fmt.Fprintf(os.Stderr, "bench-fleet: making %d VMs with %d SAs each\n", *vms, *perVM)
	recs, err := makeRecords(*vms, *perVM)
	if err != nil {
		return err
	}

	ec, err := etcdtest.Start(ctx, filepath.Join(dir, "etcd"), etcdtest.Options{Members: 1, Extra: []string{"--quota-backend-bytes", "4294967296"}})
	if err != nil {
		return err
	}
	defer ec.Close()
	kekFile := filepath.Join(dir, "kek")
	key := strings.Repeat("a5", 32)
	if err := os.WriteFile(kekFile, []byte(key+"\n"), 0o600); err != nil {
		return err
	}
	kr, err := etcd.ParseKEK([]byte(key))
	if err != nil {
		return err
	}
	c, err := etcd.Open(etcd.Options{Endpoints: ec.Endpoints(), Prefix: "/bench", Keyring: kr, OpTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()

	// vifsecd for host h1, with the tenant already stored.
	h1, err := c.Host("h1")
	if err != nil {
		return err
	}
	var tenantRec store.Record
	for _, r := range recs {
		if r.Kind == store.KindTenant {
			tenantRec = r
		}
	}
	if err := h1.Write(ctx, []store.Op{store.Put(tenantRec.Kind, tenantRec.Name, tenantRec.Value)}); err != nil {
		return err
	}
	sock := filepath.Join(dir, "vifsecd.sock")
	logf, err := os.Create(filepath.Join(dir, "vifsecd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(*binDir, "vifsecd"), "--store", ec.URL("/bench"), "--host-id", "h1", "--kek-file", kekFile,
		"--state", filepath.Join(dir, "state"), "--socket", sock, "--metrics", "off", "--libvirt", "off", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start vifsecd: %w", err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	cl := api.NewClient(sock)
	defer cl.Close()
	if err := waitFor(ctx, 20*time.Second, func() (bool, error) {
		_, err := cl.Health(ctx)
		return err == nil, nil
	}); err != nil {
		log, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("vifsecd did not answer: %v\n%s", err, log)
	}
	rssIdle, _ := lab.ProcStatusKiB(cmd.Process.Pid, "VmRSS")

	// Write every VM and SA record, in batches, from several writers:
	// the VMs first (an SA whose VM is not stored yet is not applied
	// until it is), then the SAs.
	var phases [2][]store.Op
	for _, r := range recs {
		switch r.Kind {
		case store.KindVM:
			phases[0] = append(phases[0], store.Put(r.Kind, r.Name, r.Value))
		case store.KindSA:
			phases[1] = append(phases[1], store.Put(r.Kind, r.Name, r.Value))
		}
	}
	var batches [][][]store.Op
	nOps, nTxns := 0, 0
	for _, ops := range phases {
		var bs [][]store.Op
		for i := 0; i < len(ops); i += *batch {
			bs = append(bs, ops[i:min(i+*batch, len(ops))])
		}
		batches = append(batches, bs)
		nOps += len(ops)
		nTxns += len(bs)
	}
	var werr atomic.Pointer[error]
	writePhase := func(bs [][]store.Op) {
		work := make(chan []store.Op)
		var wg sync.WaitGroup
		for range *writers {
			wg.Go(func() {
				for b := range work {
					if err := h1.Write(ctx, b); err != nil {
						werr.CompareAndSwap(nil, &err)
					}
				}
			})
		}
		for _, b := range bs {
			work <- b
		}
		close(work)
		wg.Wait()
	}
	start := time.Now()
	var converged time.Time
	convDone := make(chan error, 1)
	go func() {
		convDone <- waitFor(ctx, 10*time.Minute, func() (bool, error) {
			h, err := cl.Health(ctx)
			if err != nil {
				return false, nil
			}
			if h.VMs == *vms && h.SAs == *vms**perVM {
				converged = time.Now()
				return true, nil
			}
			return false, nil
		})
	}()
	for _, bs := range batches {
		writePhase(bs)
	}
	written := time.Now()
	if e := werr.Load(); e != nil {
		return fmt.Errorf("write: %w", *e)
	}
	wsec := written.Sub(start).Seconds()
	fmt.Printf("fleet-bench write records=%d txns=%d seconds=%.2f records_per_s=%.0f txns_per_s=%.0f writers=%d batch=%d\n",
		nOps, nTxns, wsec, float64(nOps)/wsec, float64(nTxns)/wsec, *writers, *batch)
	if err := <-convDone; err != nil {
		h, _ := cl.Health(ctx)
		return fmt.Errorf("vifsecd did not converge: %v (health %+v)", err, h)
	}
	fmt.Printf("fleet-bench converge vms=%d sas=%d seconds_from_start=%.2f seconds_after_last_write=%.2f\n",
		*vms, *vms**perVM, converged.Sub(start).Seconds(), max(0, converged.Sub(written).Seconds()))

	// One more SA on a loaded host: the latency an operator sees.
	extra, err := oneMoreSA(recs)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := h1.Write(ctx, []store.Op{extra}); err != nil {
		return err
	}
	if err := waitFor(ctx, time.Minute, func() (bool, error) {
		h, err := cl.Health(ctx)
		return err == nil && h.SAs == *vms**perVM+1, nil
	}); err != nil {
		return err
	}
	fmt.Printf("fleet-bench one-more-sa converge_ms=%d\n", time.Since(t0).Milliseconds())

	time.Sleep(2 * time.Second) // let the status key settle
	rss, _ := lab.ProcStatusKiB(cmd.Process.Pid, "VmRSS")
	hwm, _ := lab.ProcStatusKiB(cmd.Process.Pid, "VmHWM")
	fmt.Printf("fleet-bench daemon rss_kib=%d hwm_kib=%d idle_rss_kib=%d\n", rss, hwm, rssIdle)

	// What the state costs in etcd.
	st, err := c.Client().Status(ctx, ec.Members[0].ClientURL)
	if err != nil {
		return err
	}
	resp, err := c.Client().Get(ctx, "/bench/hosts/h1/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	var kb, vb int
	for _, kv := range resp.Kvs {
		kb += len(kv.Key)
		vb += len(kv.Value)
	}
	n := max(len(resp.Kvs), 1)
	statusResp, err := c.Client().Get(ctx, "/bench/status/h1")
	statusBytes := 0
	if err == nil && len(statusResp.Kvs) > 0 {
		statusBytes = len(statusResp.Kvs[0].Value)
	}
	fmt.Printf("fleet-bench etcd db_bytes=%d keys=%d key_bytes_avg=%d value_bytes_avg=%d status_bytes=%d\n",
		st.DbSize, len(resp.Kvs), kb/n, vb/n, statusBytes)
	return nil
}

func waitFor(ctx context.Context, within time.Duration, ok func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		done, err := ok()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// makeRecords has a daemon on an in-memory store add a tenant, vms VMs
// and perVM SAs per VM, and returns what it stored.
func makeRecords(vms, perVM int) ([]store.Record, error) {
	m := storetest.NewMemory()
	d, err := daemon.New(m, nil)
	if err != nil {
		return nil, err
	}
	if err := d.AddTenant(tenant.Tenant{Name: "bench"}); err != nil {
		return nil, err
	}
	key, _ := sa.ParseKey("0x000102030405060708090a0b0c0d0e0f10111213")
	for i := range vms {
		name := fmt.Sprintf("vm%05d", i)
		v := tenant.VM{Name: name, Tenant: "bench", Dev: fmt.Sprintf("bv%d", i), Netns: "vifsec-bench-absent",
			MAC: tenant.MAC{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}, VLAN: uint16(i % 4000)}
		if err := d.AttachVM(v); err != nil {
			return nil, err
		}
		for j := range perVM {
			cfg := sa.Config{Name: fmt.Sprintf("%s-sa%d", name, j), SPI: uint32(0x1000 + j), Mode: sa.ModeTransport,
				Src: netip.MustParseAddr("2001:db8:1::1"), Dst: netip.MustParseAddr("2001:db8:1::2"),
				Enc: sa.EncAES128GCM, EncKey: append([]byte(nil), key...), Integ: sa.IntegNone}
			if _, err := d.AddSA(name, cfg); err != nil {
				return nil, err
			}
		}
	}
	d.Discard()
	return m.Load()
}

// oneMoreSA is one more SA for the first VM, as the daemon would store it.
func oneMoreSA(recs []store.Record) (store.Op, error) {
	m := storetest.NewMemory()
	var ops []store.Op
	for _, r := range recs {
		if r.Kind == store.KindTenant || (r.Kind == store.KindVM && r.Name == "vm00000") {
			ops = append(ops, store.Put(r.Kind, r.Name, r.Value))
		}
	}
	if err := m.Commit(ops); err != nil {
		return store.Op{}, err
	}
	d, err := daemon.New(m, nil)
	if err != nil {
		return store.Op{}, err
	}
	defer d.Discard()
	key, _ := sa.ParseKey("0x000102030405060708090a0b0c0d0e0f10111213")
	if _, err := d.AddSA("vm00000", sa.Config{Name: "vm00000-extra", SPI: 0x9999, Mode: sa.ModeTransport,
		Src: netip.MustParseAddr("2001:db8:1::1"), Dst: netip.MustParseAddr("2001:db8:1::2"),
		Enc: sa.EncAES128GCM, EncKey: key, Integ: sa.IntegNone}); err != nil {
		return store.Op{}, err
	}
	return store.Put(store.KindSA, "vm00000-extra", m.Get(store.KindSA, "vm00000-extra")), nil
}
