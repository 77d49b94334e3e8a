package api_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/api"
	apiserver "github.com/vifsec/vifsec/internal/api"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/store/storetest"
)

// externalMain is a program of another module: it lists the SAs of the
// daemon at os.Args[1], and asks for one that does not exist.
const externalMain = `package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/vifsec/vifsec/api"
)

func main() {
	c := api.NewClient(os.Args[1])
	defer c.Close()
	ctx := context.Background()
	sas, err := c.SAs(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, s := range sas {
		fmt.Printf("sa %s %s %s\n", s.Name, s.VM, s.SPI)
	}
	if _, err := c.SA(ctx, "nosuch"); !errors.Is(err, api.ErrNotFound) {
		fmt.Fprintln(os.Stderr, "SA nosuch:", err)
		os.Exit(1)
	}
	fmt.Println("not found: ok")
}
`

// TestExternalModule builds a program in a module outside this repository
// that requires github.com/vifsec/vifsec (replaced by this checkout), with
// the module proxy off: the public client must build from the module alone,
// without any of vifsecd's dependencies, and talk to a running daemon.
func TestExternalModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program with go run (-short)")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))

	d, err := daemon.New(storetest.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: apiserver.NewHandler(d, nil, "test")}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := api.NewClient(sock)
	defer c.Close()
	ctx := context.Background()
	for _, f := range []func() (api.Added, error){
		func() (api.Added, error) { return c.AddTenant(ctx, api.TenantAddRequest{Tenant: "t1", VNI: "5001"}) },
		func() (api.Added, error) {
			return c.AttachVM(ctx, api.VMAttachRequest{VM: "vm1", Tenant: "t1", Dev: "tap0", MAC: "52:54:00:ab:cd:ef", VLAN: "10"})
		},
		func() (api.Added, error) {
			return c.AddSA(ctx, api.SAAddRequest{VM: "vm1", SAName: "sa1", SASource: "2001:db8:1::1", SADestination: "2001:db8:1::2",
				SAMode: "transport", SASPI: "0x1000", EncryptionAlgorithm: "aes128-gcm",
				EncryptionKey: "0x000102030405060708090a0b0c0d0e0f10111213", IntegrityAlgorithm: "none"})
		},
	} {
		if _, err := f(); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	gomod := "module example.com/vifsecclient\n\ngo 1.26\n\nrequire github.com/vifsec/vifsec v0.0.0\n\nreplace github.com/vifsec/vifsec => " + root + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(externalMain), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", ".", sock)
	cmd.Dir = dir
	// Offline, with an empty module cache: no proxy, no checksum database.
	// The replace covers the only requirement, so nothing needs
	// downloading unless the client imports a dependency of the module,
	// which it must not.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE="+t.TempDir(), "GOPROXY=off", "GOSUMDB=off", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run in an external module: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sa sa1 vm1 ") || !strings.Contains(string(out), "not found: ok") {
		t.Errorf("output:\n%s", out)
	}
}
