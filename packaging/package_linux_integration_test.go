package packaging

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/vifsec/vifsec/internal/testutil"
)

// The files the package must hold (besides its DEBIAN control files).
var wantFiles = []string{
	"./usr/sbin/vifsecd",
	"./usr/sbin/vifsec-hook",
	"./usr/bin/vifsec",
	"./usr/lib/systemd/system/vifsecd.service",
	"./etc/default/vifsecd",
	"./usr/share/man/man8/vifsecd.8.gz",
	"./usr/share/man/man8/vifsec.8.gz",
	"./usr/share/man/man8/vifsec-hook.8.gz",
	"./usr/share/bash-completion/completions/vifsec",
	"./usr/share/zsh/vendor-completions/_vifsec",
	"./usr/share/doc/vifsec/copyright",
}

// capabilities are the unit's CapabilityBoundingSet, as setpriv spells
// them.
const capabilities = "-all,+net_admin,+net_raw,+bpf,+net_bind_service"

// TestIntegrationPackage installs the Debian package make deb built
// (VIFSEC_DEB), checks its contents and unit, and runs /usr/sbin/vifsecd
// from it with only the unit's capabilities, in a network namespace of
// its own: it reports READY=1 to a service manager's socket, attaches an
// uplink and a VM there, answers /healthz and /readyz, and stops cleanly
// on SIGTERM. The package is purged afterwards.
func TestIntegrationPackage(t *testing.T) {
	deb := os.Getenv("VIFSEC_DEB")
	if deb == "" {
		testutil.CannotRun(t, "VIFSEC_DEB is not set; make test builds the package and sets it")
	}
	if os.Geteuid() != 0 {
		testutil.CannotRun(t, "needs root to install a package")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "setpriv", "ip", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.CannotRun(t, tool+" not found")
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "vifsec").Output(); err == nil && strings.Contains(string(out), "installed") {
		testutil.CannotRun(t, "a vifsec package is already installed on this machine; this test installs and purges its own")
	}

	// Contents.
	out, err := exec.Command("dpkg-deb", "-c", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c %s: %v\n%s", deb, err, out)
	}
	listing := string(out)
	for _, f := range wantFiles {
		if !strings.Contains(listing, " "+f+"\n") {
			t.Errorf("package lacks %s", f)
		}
	}
	if !strings.Contains(listing, "-rwxr-xr-x root/root") {
		t.Errorf("package files are not owned by root:\n%s", listing)
	}
	t.Logf("dpkg-deb -c:\n%s", listing)

	// Install; purge whatever happens.
	run(t, "dpkg", "-i", deb)
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "vifsec").CombinedOutput(); err != nil {
			t.Errorf("dpkg --purge vifsec: %v\n%s", err, out)
		}
		if _, err := os.Stat("/usr/sbin/vifsecd"); err == nil {
			t.Error("/usr/sbin/vifsecd still there after purge")
		}
	})
	if v := os.Getenv("VIFSEC_VERSION"); v != "" {
		for _, p := range []string{"/usr/sbin/vifsecd", "/usr/bin/vifsec", "/usr/sbin/vifsec-hook"} {
			if got := run(t, p, "--version"); !strings.HasPrefix(got, filepath.Base(p)+" "+v+" ") {
				t.Errorf("%s --version = %q, want version %s", p, got, v)
			}
		}
	}
	// The unit as systemd reads it, against the installed binaries.
	run(t, "systemd-analyze", "verify", "/usr/lib/systemd/system/vifsecd.service")
	// Man pages render; the bash completion loads.
	for _, p := range []string{"vifsecd", "vifsec", "vifsec-hook"} {
		if page := run(t, "sh", "-c", "zcat /usr/share/man/man8/"+p+".8.gz | man -l - 2>&1"); !strings.Contains(page, "SYNOPSIS") || !strings.Contains(page, "--") {
			t.Errorf("man %s does not render a synopsis and options:\n%s", p, page)
		}
	}
	if got := run(t, "bash", "-c", "source /usr/share/bash-completion/completions/vifsec && complete -p vifsec"); !strings.Contains(got, "vifsec") {
		t.Errorf("bash completion registers nothing: %q", got)
	}

	// The daemon from the package, in a namespace of its own with only the
	// unit's capabilities.
	ns := fmt.Sprintf("vpkg%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, c := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "up0", "type", "veth", "peer", "name", "up1"},
		{"link", "add", "vm0", "type", "veth", "peer", "name", "vm1"},
		{"link", "set", "up0", "up"}, {"link", "set", "up1", "up"},
		{"link", "set", "vm0", "up"}, {"link", "set", "vm1", "up"},
	} {
		run(t, "ip", append([]string{"-n", ns}, c...)...)
	}
	dir := t.TempDir()
	notifyPath := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	sock := filepath.Join(dir, "vifsecd.sock")
	cmd := exec.Command("ip", "netns", "exec", ns, "setpriv", "--bounding-set", capabilities, "--inh-caps", "-all",
		"/usr/sbin/vifsecd", "--state", filepath.Join(dir, "state"), "--socket", sock, "--metrics", "127.0.0.1:9483", "--log-format", "json", "--libvirt", "off")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var logLines []string // read only after logDone
	logDone := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			logLines = append(logLines, sc.Text())
		}
		close(logDone)
	}()
	// showLogs kills the daemon (if it still runs) and returns its log.
	showLogs := func() string {
		cmd.Process.Kill()
		<-logDone
		return strings.Join(logLines, "\n")
	}
	go func() { <-logDone; exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	states := make(chan string, 8)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			states <- string(buf[:n])
		}
	}()
	waitState := func(want string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case s := <-states:
				if strings.Contains(s, want) {
					return
				}
			case err := <-exited:
				t.Fatalf("vifsecd exited before %s: %v\n%s", want, err, showLogs())
			case <-timeout:
				t.Fatalf("vifsecd did not send %s", want)
			}
		}
	}
	waitState("READY=1")

	cli := func(args ...string) string {
		t.Helper()
		return run(t, "/usr/bin/vifsec", append([]string{"--socket", sock}, args...)...)
	}
	// Not ready before it has an uplink.
	if code, body := get(t, ns, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "uplink") {
		t.Errorf("/readyz without an uplink: %d %q", code, body)
	}
	cli("tenant", "add", "--tenant", "acme")
	cli("uplink", "set", "--dev", "up0")
	cli("vm", "attach", "--vm", "web1", "--tenant", "acme", "--dev", "vm0", "--mac", "52:54:00:12:34:56", "--ip", "192.0.2.1")
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := get(t, ns, "/readyz")
		vms := cli("--format", "json", "vm", "list")
		if code == http.StatusOK && strings.Contains(vms, `"attached"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready with an uplink and a VM: /readyz %d %q; vm list %s\n%s", code, body, vms, showLogs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get(t, ns, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %q", code, body)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	waitState("STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("vifsecd after SIGTERM: %v\n%s", err, showLogs())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("vifsecd did not stop on SIGTERM")
	}
	<-logDone
	for _, l := range logLines {
		if !strings.HasPrefix(l, "{") {
			t.Errorf("--log-format json wrote a line that is not JSON: %q", l)
		}
	}
}

// run runs a command and returns its output; it fails the test otherwise.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// get fetches path from the metrics listener inside namespace ns.
func get(t *testing.T, ns, path string) (int, string) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	// The socket is made in ns; the thread goes back before anything else
	// runs on it.
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(context.Background(), "tcp", "127.0.0.1:9483")
	if err2 := netns.Set(orig); err2 != nil {
		panic(err2)
	}
	if err != nil {
		return 0, err.Error()
	}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://metrics" + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
