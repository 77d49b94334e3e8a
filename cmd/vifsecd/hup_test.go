package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
)

// TestSIGHUP: SIGHUP does not stop vifsecd (it used to exit 129 and leave
// its socket): the daemon logs that it re-read its state (changing
// nothing) and re-checked the uplink and VM interfaces, goes on answering
// on its socket, and still stops cleanly on cancel (SIGTERM). It also
// checks that uplink set refuses an interface that does not exist,
// naming --dev, and leaves the uplink as it was.
func TestSIGHUP(t *testing.T) {
	dir, err := os.MkdirTemp("", "vifsecd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	args := []string{"--state", filepath.Join(dir, "state"), "--socket", sock, "--metrics", "off", "--libvirt", "off"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	readyc := make(chan struct{}, 1)
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &logs, func(_, _ string) { readyc <- struct{}{} }) }()
	select {
	case <-readyc:
	case code := <-done:
		t.Fatalf("exited %d before ready:\n%s", code, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	c := api.NewClient(sock)
	defer c.Close()
	for _, err := range []error{
		second(c.AddTenant(ctx, api.TenantAddRequest{Tenant: "t1"})),
		second(c.AttachVM(ctx, api.VMAttachRequest{VM: "vm1", Tenant: "t1", Dev: "vifsec-nodev1", MAC: "52:54:00:00:00:01", IP: []string{"2001:db8:1::121"}})),
		second(c.AddSA(ctx, api.SAAddRequest{VM: "vm1", SAName: "sa1", SASource: "2001:db8:1::121", SADestination: "2001:db8:1::122",
			SAMode: "transport", SASPI: "0x1000", EncryptionAlgorithm: "aes128-gcm",
			EncryptionKey: "0x000102030405060708090a0b0c0d0e0f10111213", IntegrityAlgorithm: "none"})),
		second(c.AddSP(ctx, api.SPAddRequest{VM: "vm1", SPName: "sp1", SPSource: "2001:db8:1::121/128", SPDestination: "2001:db8:1::122/128",
			SourcePort: "any", DestinationPort: "any", UpperLayerProtocol: "any", FlowDirection: "out", Action: "ipsec", SPMode: "transport", SAName: "sa1"})),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The data path checks that an uplink's interface exists.
	if _, err := c.SetUplink(ctx, api.UplinkSetRequest{Dev: "vifsec-eht1"}); err == nil || !strings.Contains(err.Error(), "--dev vifsec-eht1") {
		t.Errorf("uplink set of a missing interface: %v, want refused naming --dev", err)
	}
	if u, err := c.Uplink(ctx); err != nil || u != nil {
		t.Errorf("after the refused uplink set: uplink %+v, %v; want none", u, err)
	}

	for i := 1; i <= 2; i++ {
		before := strings.Count(logs.String(), "SIGHUP: re-checked")
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(logs.String(), "SIGHUP: re-checked") == before {
			select {
			case code := <-done:
				t.Fatalf("SIGHUP %d: vifsecd exited %d:\n%s", i, code, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("SIGHUP %d: no re-check logged:\n%s", i, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n := strings.Count(logs.String(), `msg="SIGHUP: state re-read" records=`); n != i {
			t.Fatalf("SIGHUP %d: %d state re-reads logged:\n%s", i, n, logs.String())
		}
		// Re-reading a store only this daemon writes changes nothing.
		if strings.Contains(logs.String(), "changed=true") || strings.Contains(logs.String(), "converged to the stored state") {
			t.Fatalf("SIGHUP %d changed the state:\n%s", i, logs.String())
		}
		// Still answering, with everything it had.
		if sas, err := c.SAs(ctx); err != nil || len(sas) != 1 {
			t.Fatalf("after SIGHUP %d: SAs %v, %v", i, sas, err)
		}
		if sps, err := c.SPs(ctx); err != nil || len(sps) != 1 {
			t.Fatalf("after SIGHUP %d: SPs %v, %v", i, sps, err)
		}
	}
	if !strings.Contains(logs.String(), `msg="SIGHUP: VM interface not attached" vm=vm1`) {
		t.Errorf("the re-check did not report vm1's missing interface:\n%s", logs.String())
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cancel, want 0:\n%s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket not removed: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
