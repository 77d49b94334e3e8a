//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/libvirt"
	"github.com/vifsec/vifsec/tenant"
)

// The integration tests run the real vifsecd and vifsec-hook binaries. The
// libvirt test also runs libvirtd and virtlogd (unless a libvirtd is
// already running, which it then uses without restarting it), installs the
// hook under a name of its own, and defines diskless domains of unique
// names started paused (no CPU spent on a guest that has nothing to boot).
// Every process it starts is stopped by PID, every domain destroyed and
// undefined, the hook file removed, also when it fails.

// needRoot skips, or fails in CI, when the test cannot run here.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = tool + " not installed (apt-get install libvirt-daemon-system libvirt-daemon-system-sysv libvirt-clients qemu-system-x86)"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

var (
	buildOnce sync.Once
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	os.Setenv("PATH", os.Getenv("PATH")+":/usr/sbin:/sbin")
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// build builds vifsecd and vifsec-hook once; it returns their directory.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "vifsec-hook-it-")
		if buildErr != nil {
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = "/usr/local/go/bin/go"
		}
		out, err := exec.Command(gobin, "build", "-o", binDir+"/", "github.com/vifsec/vifsec/cmd/vifsecd", "github.com/vifsec/vifsec/cmd/vifsec-hook").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// proc is a process the test started; stop ends it by PID.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start starts a process that cleanup stops.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := spawn(t, name, args...)
	t.Cleanup(func() { p.stop() })
	return p
}

// spawn starts a process; the caller stops it.
func spawn(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p
}

// stop sends SIGTERM, then SIGKILL after 15 s, and waits.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Logf("%s (pid %d) ignored SIGTERM; killing it", p.name, p.cmd.Process.Pid)
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		good, s := ok()
		if good {
			return
		}
		last = s
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v; last: %s", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vifsecd runs the daemon on dir's state and socket.
func vifsecd(t *testing.T, bin, dir string, extra ...string) (*proc, *api.Client) {
	t.Helper()
	sock := filepath.Join(dir, "s")
	p := start(t, filepath.Join(bin, "vifsecd"), append([]string{"--state", filepath.Join(dir, "state"), "--socket", sock, "--metrics", "off"}, extra...)...)
	c := api.NewClient(sock)
	t.Cleanup(c.Close)
	waitFor(t, "vifsecd answers", 15*time.Second, func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("vifsecd exited:\n%s", p.log.String())
		default:
		}
		_, err := c.Version(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	return p, c
}

const (
	roSocket = "/run/libvirt/libvirt-sock-ro"
	rwSocket = "/run/libvirt/libvirt-sock"
)

func libvirtUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, err := libvirt.ListLive(ctx, []string{roSocket}, libvirt.DefaultURI)
	return err
}

// spawnLibvirtd starts libvirtd in the foreground and waits until it
// answers on both sockets. The caller stops it.
func spawnLibvirtd(t *testing.T) *proc {
	t.Helper()
	p := spawn(t, "libvirtd")
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("libvirtd exited:\n%s", p.log.String())
		default:
		}
		err := libvirtUp()
		if err == nil {
			if _, err = os.Stat(rwSocket); err == nil {
				return p
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			t.Fatalf("libvirtd does not answer after 60s: %v\n%s", err, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func virsh(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "virsh", append([]string{"-c", libvirt.DefaultURI}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func mustVirsh(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, err := virsh(t, args...)
	if err != nil {
		t.Fatalf("virsh %v: %v\n%s%s", args, err, out, errs)
	}
	return out
}

const domainXML = `<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <metadata>
    <vifsec:vm xmlns:vifsec="https://vifsec.dev/xmlns/libvirt/1" tenant="%s" fail="%s">
      <vifsec:interface mac="%s" vlan="100"/>
    </vifsec:vm>
  </metadata>
  <devices>
    <interface type='ethernet'>
      <mac address='%s'/>
      <model type='virtio'/>
    </interface>
  </devices>
  <seclabel type='none'/>
</domain>
`

// defineDomain defines a domain; cleanup destroys and undefines it and
// removes its log.
func defineDomain(t *testing.T, dir, name, tenantName, fail, mac string) {
	t.Helper()
	p := filepath.Join(dir, name+".xml")
	if err := os.WriteFile(p, fmt.Appendf(nil, domainXML, name, tenantName, fail, mac, mac), 0o644); err != nil {
		t.Fatal(err)
	}
	mustVirsh(t, "define", p)
	t.Cleanup(func() {
		virsh(t, "destroy", name)
		if _, e, err := virsh(t, "undefine", name); err != nil {
			t.Errorf("undefine %s: %v %s", name, err, e)
		}
		os.Remove(filepath.Join("/var/log/libvirt/qemu", name+".log"))
	})
}

// liveTarget returns the domain's UUID and <target dev> as libvirt says.
func liveTarget(t *testing.T, name string) (uuid, dev string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	doms, _, err := libvirt.ListLive(ctx, []string{roSocket}, libvirt.DefaultURI)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range doms {
		if d.Ref.Name == name {
			dom, err := libvirt.ParseDomain(d.XML)
			if err != nil || len(dom.Interfaces) != 1 {
				t.Fatalf("live XML of %s: %v %+v", name, err, dom)
			}
			return d.Ref.UUIDString(), dom.Interfaces[0].Target
		}
	}
	t.Fatalf("domain %s is not running", name)
	return "", ""
}

// logListLive logs how long one ListLive (connect, authenticate, open,
// list the running domains, read each one's XML, close) takes against
// the real libvirtd: ten calls, for information, not as an assertion.
func logListLive(t *testing.T) {
	t.Helper()
	var total, worst time.Duration
	n := 0
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		doms, _, err := libvirt.ListLive(ctx, []string{roSocket}, libvirt.DefaultURI)
		d := time.Since(start)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		n = len(doms)
		total += d
		worst = max(worst, d)
	}
	t.Logf("ListLive against libvirtd (%d running domains): mean %v, max %v over 10 calls", n, total/10, worst)
}

func findVM(t *testing.T, c *api.Client, name string) (api.VM, bool) {
	t.Helper()
	vms, err := c.VMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vms {
		if v.Name == name {
			return v, true
		}
	}
	return api.VM{}, false
}

// waitAttached waits until vifsecd lists vm on dev and serves it.
func waitAttached(t *testing.T, c *api.Client, vm, dev, mac, tenantName, origin string) {
	t.Helper()
	waitFor(t, "VM "+vm+" attached on "+dev, 15*time.Second, func() (bool, string) {
		v, ok := findVM(t, c, vm)
		return ok && v.Dev == dev && v.MAC == mac && v.VLAN == 100 && v.Tenant == tenantName && v.Origin == origin && v.VIF == "attached", fmt.Sprintf("%+v (found %v)", v, ok)
	})
}

func randomMAC(t *testing.T) (string, tenant.MAC) {
	var b [3]byte
	rand.Read(b[:])
	s := fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
	m, err := tenant.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

func TestIntegrationLibvirt(t *testing.T) {
	needRoot(t, "libvirtd", "virtlogd", "virsh", "qemu-system-x86_64")
	bin := build(t)
	dir, err := os.MkdirTemp("", "vlv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	id := fmt.Sprintf("%d%d", os.Getpid(), time.Now().UnixNano()%100000)
	tenantName := "lvit" + id
	hookName := "vifsec-it-" + id

	// The hook, under a name of its own; qemu.d goes if the test made it.
	hooksDir := libvirt.DefaultHooksDir
	qemuD := filepath.Join(hooksDir, "qemu.d")
	_, statErr := os.Stat(qemuD)
	madeQemuD := os.IsNotExist(statErr)
	running := libvirtUp() == nil
	if running && os.Getenv("CI") == "true" {
		t.Fatal("a libvirtd is already running; this test restarts only a libvirtd it started")
	}
	installArgs := []string{"install", "--name", hookName, "--socket", filepath.Join(dir, "s")}
	if running {
		installArgs = append(installArgs, "--reload")
	}
	out, err := exec.Command(filepath.Join(bin, "vifsec-hook"), installArgs...).CombinedOutput()
	if err != nil {
		t.Fatalf("vifsec-hook install: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		out, err := exec.Command(filepath.Join(bin, "vifsec-hook"), "uninstall", "--name", hookName).CombinedOutput()
		if err != nil {
			t.Errorf("vifsec-hook uninstall: %v\n%s", err, out)
		}
		if madeQemuD {
			os.Remove(qemuD) // only if empty
		}
	})
	t.Logf("vifsec-hook install: %s", out)

	// libvirt: the hook exists before libvirtd starts.
	var lvd *proc
	if !running {
		if err := os.MkdirAll("/var/log/libvirt/qemu", 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat("/run/libvirt/virtlogd-sock"); err != nil {
			vl := start(t, "virtlogd")
			waitFor(t, "virtlogd listens", 15*time.Second, func() (bool, string) {
				_, err := os.Stat("/run/libvirt/virtlogd-sock")
				select {
				case <-vl.done:
					t.Fatalf("virtlogd exited:\n%s", vl.log.String())
				default:
				}
				return err == nil, fmt.Sprint(err)
			})
		}
		lvd = spawnLibvirtd(t)
		// One cleanup for whichever libvirtd runs at the end (it is
		// restarted below); registered before the domains', so it runs
		// after them.
		t.Cleanup(func() { lvd.stop() })
	}

	d1p, c := vifsecd(t, bin, dir, "--libvirt", "off")
	if _, err := c.AddTenant(context.Background(), api.TenantAddRequest{Tenant: tenantName}); err != nil {
		t.Fatal(err)
	}

	// 1. A domain with vifsec metadata starts: attached on its vnetN with
	// the MAC, VLAN and tenant of its XML.
	dom1 := "vifsec-it-" + id + "-1"
	mac1, mac1m := randomMAC(t)
	defineDomain(t, dir, dom1, tenantName, "open", mac1)
	startT := time.Now()
	mustVirsh(t, "start", "--paused", dom1)
	t.Logf("virsh start took %v", time.Since(startT))
	uuid1, dev1 := liveTarget(t, dom1)
	logListLive(t)
	if !strings.HasPrefix(dev1, "vnet") {
		t.Fatalf("target dev %q, want vnetN", dev1)
	}
	vm1 := libvirt.DefaultVMName(dom1, mac1m)
	origin1 := libvirt.Origin(uuid1)
	if v, ok := findVM(t, c, vm1); !ok || v.Dev != dev1 {
		t.Fatalf("right after virsh start, VM %s is %+v (found %v): the hook did not attach it", vm1, v, ok)
	}
	waitAttached(t, c, vm1, dev1, mac1, tenantName, origin1)

	// 2. libvirtd restarts with the domain running: reconnect attaches
	// it again (it was detached meanwhile, so only the hook can have).
	if lvd == nil {
		t.Log("reconnect not tested: libvirtd was running before the test, and only a libvirtd the test started is restarted")
	} else {
		if _, err := c.DetachVM(context.Background(), vm1); err != nil {
			t.Fatal(err)
		}
		lvd.stop()
		lvd = spawnLibvirtd(t)
		waitAttached(t, c, vm1, dev1, mac1, tenantName, origin1)
	}

	// 3. Reconciliation at vifsecd's start: the running domain's VM,
	// detached while vifsecd ran, is attached again; a VM of a domain
	// that does not run is detached; an operator's VM stays.
	if _, err := c.DetachVM(context.Background(), vm1); err != nil {
		t.Fatal(err)
	}
	staleMAC, _ := randomMAC(t)
	if _, err := c.PutVM(context.Background(), api.VMAttachRequest{VM: "stale-" + id, Tenant: tenantName, Dev: "vfsgone" + id[:4],
		MAC: staleMAC, Origin: libvirt.Origin("00000000-0000-4000-8000-" + fmt.Sprintf("%012d", time.Now().UnixNano()%1e12))}); err != nil {
		t.Fatal(err)
	}
	opMAC, _ := randomMAC(t)
	if _, err := c.AttachVM(context.Background(), api.VMAttachRequest{VM: "op-" + id, Tenant: tenantName, Dev: "vfsop" + id[:4], MAC: opMAC}); err != nil {
		t.Fatal(err)
	}
	d1p.stop()
	d2p, c := vifsecd(t, bin, dir, "--libvirt", roSocket)
	waitAttached(t, c, vm1, dev1, mac1, tenantName, origin1)
	waitFor(t, "stale VM detached", 10*time.Second, func() (bool, string) {
		_, ok := findVM(t, c, "stale-"+id)
		return !ok, "still there"
	})
	if _, ok := findVM(t, c, "op-"+id); !ok {
		t.Fatal("reconciliation detached an operator's VM")
	}
	if _, err := c.DetachVM(context.Background(), "op-"+id); err != nil {
		t.Fatal(err)
	}

	// 4. virsh destroy: the stopped hook detaches at once.
	mustVirsh(t, "destroy", dom1)
	if v, ok := findVM(t, c, vm1); ok {
		t.Fatalf("after virsh destroy VM %s is still there: %+v", vm1, v)
	}

	// 5. vifsecd stopped: fail="open" starts unprotected (and stops
	// fine); fail="closed" does not start, with the hook's message.
	d2p.stop()
	mustVirsh(t, "start", "--paused", dom1)
	mustVirsh(t, "destroy", dom1)
	dom2 := "vifsec-it-" + id + "-2"
	mac2, _ := randomMAC(t)
	defineDomain(t, dir, dom2, tenantName, "closed", mac2)
	sout, serr, err := virsh(t, "start", "--paused", dom2)
	if err == nil {
		t.Fatalf("virsh start of a fail=closed domain with vifsecd stopped succeeded: %s", sout)
	}
	for _, want := range []string{"Hook script execution failed", "vifsec-hook: " + dom2 + " prepare: refusing to start domain " + dom2 + ` unprotected (fail="closed"): cannot reach vifsecd at ` + filepath.Join(dir, "s")} {
		if !strings.Contains(serr, want) {
			t.Errorf("virsh start stderr does not say %q:\n%s", want, serr)
		}
	}
	if st := strings.TrimSpace(mustVirsh(t, "domstate", dom2)); st != "shut off" {
		t.Errorf("domain %s is %q after the refused start", dom2, st)
	}
	t.Logf("virsh start %s (fail=closed, vifsecd stopped):\n%s", dom2, serr)

	// With vifsecd back, the same domain starts and is attached.
	_, c = vifsecd(t, bin, dir, "--libvirt", "off")
	mustVirsh(t, "start", "--paused", dom2)
	uuid2, dev2 := liveTarget(t, dom2)
	mac2m, _ := tenant.ParseMAC(mac2)
	waitAttached(t, c, libvirt.DefaultVMName(dom2, mac2m), dev2, mac2, tenantName, libvirt.Origin(uuid2))
	mustVirsh(t, "destroy", dom2)
	vms, err := c.VMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 0 {
		t.Fatalf("VMs left: %+v", vms)
	}
}

// TestIntegrationHookLatency runs the vifsec-hook binary as libvirt does,
// 240 times against a running vifsecd (prepare, start, stopped and a
// domain without metadata, in turn), and reports its latency per
// operation; the goal is p99 under 100 ms.
func TestIntegrationHookLatency(t *testing.T) {
	needRoot(t)
	bin := build(t)
	dir, err := os.MkdirTemp("", "vhl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_, c := vifsecd(t, bin, dir, "--libvirt", "off")
	if _, err := c.AddTenant(context.Background(), api.TenantAddRequest{Tenant: "acme"}); err != nil {
		t.Fatal(err)
	}
	x, err := os.ReadFile(filepath.Join("..", "..", "internal", "libvirt", "testdata", "ethernet-reconnect.xml"))
	if err != nil {
		t.Fatal(err)
	}
	// A device that does not exist: the data path waits for it, the hook
	// does all its work.
	x = bytes.Replace(x, []byte("<target dev='vnet1'/>"), []byte("<target dev='vfslat0'/>"), 1)
	plain, err := os.ReadFile(filepath.Join("..", "..", "internal", "libvirt", "testdata", "no-metadata.xml"))
	if err != nil {
		t.Fatal(err)
	}
	hookBin := filepath.Join(bin, "vifsec-hook")
	sock := filepath.Join(dir, "s")
	runHook := func(op string, in []byte) time.Duration {
		cmd := exec.Command(hookBin, "--socket", sock, "--syslog=false", "vifsec-probe1", op, "begin", "-")
		cmd.Stdin = bytes.NewReader(in)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		if err != nil {
			t.Fatalf("hook %s: %v\n%s", op, err, errb.String())
		}
		return d
	}
	// The baseline, /bin/true run the same way and interleaved, tells how
	// busy the machine is: on a shared 2-core machine whose other jobs
	// keep it at a load of 8, a process start alone can take 50 ms.
	baseline := func() time.Duration {
		t0 := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
		return time.Since(t0)
	}
	const n = 60 // 240 runs of the hook
	lat := map[string][]time.Duration{}
	for i := 0; i < n; i++ {
		for _, op := range []string{"prepare", "start", "stopped"} {
			lat[op] = append(lat[op], runHook(op, x))
		}
		lat["no metadata"] = append(lat["no metadata"], runHook("start", plain))
		lat["/bin/true"] = append(lat["/bin/true"], baseline())
	}
	if _, ok := findVM(t, c, probeVM); ok {
		t.Fatal("VM left attached")
	}
	pct := func(ds []time.Duration, p int) time.Duration {
		return ds[(len(ds)*p+99)/100-1].Round(10 * time.Microsecond)
	}
	var all []time.Duration
	for _, op := range []string{"/bin/true", "no metadata", "prepare", "start", "stopped"} {
		ds := lat[op]
		slices.Sort(ds)
		if op != "/bin/true" {
			all = append(all, ds...)
		}
		t.Logf("%-11s n=%d p50=%v p99=%v max=%v", op, len(ds), pct(ds, 50), pct(ds, 99), ds[len(ds)-1].Round(10*time.Microsecond))
	}
	slices.Sort(all)
	p99, base := pct(all, 99), pct(lat["/bin/true"], 99)
	t.Logf("vifsec-hook, all operations: n=%d p50=%v p99=%v (goal: p99 under 100 ms); /bin/true p99=%v", len(all), pct(all, 50), p99, base)
	if p99 > 100*time.Millisecond {
		// On an idle machine /bin/true starts in about a millisecond.
		if b50 := pct(lat["/bin/true"], 50); b50 > 3*time.Millisecond || base > 20*time.Millisecond {
			t.Logf("p99 over 100 ms, but the machine is too busy to judge: /bin/true alone has p50 %v, p99 %v", b50, base)
			return
		}
		t.Errorf("hook p99 %v; the goal is under 100 ms", p99)
	}
}
