package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A strongSwan peer in the lab: charon with the kernel-libipsec plugin, so
// that it does ESP in userspace over a TUN device (ipsec0) on kernels without
// ESP. Each charon runs in a network namespace and in its own mount
// namespace, where a private directory is bind-mounted over /var/run (pid
// file, vici socket) and over /etc/swanctl (config); STRONGSWAN_CONF points
// at a private strongswan.conf.
//
// strongSwan 5.9.8 (Debian 12) libipsec always negotiates UDP
// encapsulation: the Child SA is ESP-in-UDP on port 4500 ("TUNNEL-in-UDP"),
// and it does tunnel mode only.

// CharonPluginDir holds charon's plugins on Debian.
const CharonPluginDir = "/usr/lib/ipsec/plugins"

// TunDevice is the TUN device kernel-libipsec creates in charon's namespace.
const TunDevice = "ipsec0"

// CharonPath is the charon binary Debian's strongswan-charon installs.
const CharonPath = "/usr/lib/ipsec/charon"

// CharonPlugins are the plugins charon loads: its defaults that a lab
// needs, in load order; kdf is required for IKEv2 key derivation
// in 5.9.x, openssl brings chacha20poly1305, x25519 and ecp.
const CharonPlugins = "random nonce kdf aes sha1 sha2 hmac gcm pem pkcs1 x509 revocation constraints pubkey openssl kernel-libipsec kernel-netlink socket-default vici updown"

// CharonConfig describes one charon and its single IKE connection.
//
// For anything the fields do not cover (certificates, several children,
// DPD, rekey timers), set SwanctlConf to a whole swanctl.conf: it is used
// verbatim and the connection fields are ignored.
type CharonConfig struct {
	NS  string // network namespace charon runs in (must exist)
	Dir string // private directory for config, run dir and log; "" makes a temp dir that Stop removes

	// The IKE connection, named Conn with one child Child (defaults
	// "lab" and "lab").
	Conn, Child   string
	Local, Remote netip.Addr // IKE endpoints
	// LocalID and RemoteID default to the addresses.
	LocalID, RemoteID string
	PSK               string // IKE pre-shared key (auth = psk on both sides)
	// Traffic selectors of the child; they default to the endpoints.
	LocalTS, RemoteTS []netip.Prefix
	IKEProposals      string // default aes128gcm16-prfsha256-modp2048
	ESPProposals      string // default aes128gcm16
	Mode              string // default tunnel (libipsec has nothing else)
	// StartAction is the child's start_action (none, trap, start); default none.
	StartAction string

	// MTU of libipsec's TUN device (ipsec0); 0 leaves strongSwan's
	// hard-coded 1400 (5.9.8 has no setting for it: StartCharon sets it
	// with ip link). Tunnel traffic leaves as ESP-in-UDP, about 70 bytes
	// more: keep MTU+70 within the underlay's MTU or outer packets fragment.
	MTU int
	// RawESP asks for raw ESP (kernel-libipsec raw_esp): strongSwan 6
	// then does plain ESP on IP protocol 50 where there is no NAT; 5.9.8
	// ignores it.
	RawESP bool

	// NoRoutes sets charon.install_routes = no. kernel-libipsec 5.9.8
	// still routes each child's remote TS into its TUN device (table 220,
	// looked up before main); StartCharon keeps charon's own packets from
	// Local on the main table whatever this says.
	NoRoutes bool

	// Plugins is charon's load list; "" means CharonPlugins.
	Plugins string

	// Root is a root file system charon and swanctl run in, chrooted
	// inside charon's mount namespace: a debootstrap tree such as the
	// strongSwan 6 one of `make lab-sw6`. "" runs the host's. Charon is
	// the daemon's path inside it; "" means CharonPath.
	// A daemon named charon-systemd reads its own strongswan.conf
	// section, which StartCharon writes under that name.
	Root   string
	Charon string

	SwanctlConf string // a whole swanctl.conf, overriding the connection fields

	// Files are written under charon's private /etc/swanctl before it
	// starts, by path relative to it: "x509/peer.pem", "x509ca/ca.pem",
	// "private/peer.key" (swanctl --load-all loads them from there).
	Files map[string][]byte
}

// Charon is a running charon. Its methods may be called from one goroutine
// at a time.
type Charon struct {
	Cfg    CharonConfig
	Dir    string
	Log    string // charon's log (stderr), under Dir
	PID    int    // charon's process id, in the host's pid namespace
	conf   string // strongswan.conf
	rmDir  bool
	cmd    *exec.Cmd
	exited chan error
}

// StartCharon writes cfg's configuration under a private directory, starts
// charon in cfg.NS with its own mount namespace, waits for its vici socket
// and loads the configuration (swanctl --load-all). On error nothing it
// started is left running.
func StartCharon(ctx context.Context, cfg CharonConfig) (c *Charon, err error) {
	if cfg.NS == "" {
		return nil, errors.New("strongswan: CharonConfig.NS is empty")
	}
	if cfg.Charon == "" {
		cfg.Charon = CharonPath
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, cfg.Charon)); err != nil {
		return nil, fmt.Errorf("strongswan: %s missing (apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins): %w", filepath.Join(cfg.Root, cfg.Charon), err)
	}
	// gcm and openssl come from libstrongswan-standard-plugins, which
	// apt-get --no-install-recommends leaves out; charon then starts but
	// fails every AES-GCM or MODP proposal.
	var missing []string
	if cfg.Plugins == "" {
		cfg.Plugins = CharonPlugins
	}
	for _, p := range strings.Fields(cfg.Plugins) {
		if _, err := os.Stat(filepath.Join(cfg.Root, CharonPluginDir, "libstrongswan-"+p+".so")); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("strongswan: plugins %s missing from %s (apt-get install libstrongswan-standard-plugins libcharon-extra-plugins)",
			strings.Join(missing, ", "), filepath.Join(cfg.Root, CharonPluginDir))
	}
	if cfg.Root != "" {
		if _, err := os.Stat(filepath.Join(cfg.Root, "usr/sbin/swanctl")); err != nil {
			return nil, fmt.Errorf("strongswan: swanctl missing in %s: %w", cfg.Root, err)
		}
	} else if _, err := exec.LookPath("swanctl"); err != nil {
		return nil, fmt.Errorf("strongswan: swanctl missing (apt-get install strongswan-swanctl): %w", err)
	}
	c = &Charon{Cfg: cfg, Dir: cfg.Dir}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "vifsec-charon-"); err != nil {
			return nil, err
		}
		c.rmDir = true
	}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	runDir, swanctlDir := filepath.Join(c.Dir, "run"), filepath.Join(c.Dir, "swanctl")
	for _, d := range []string{runDir, swanctlDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return c, err
		}
	}
	// strongswan.conf: in the run directory, which a chrooted charon
	// sees as /run.
	confFile := filepath.Join(runDir, "strongswan.conf")
	c.conf = confFile
	if cfg.Root != "" {
		c.conf = "/run/strongswan.conf"
	}
	c.Log = filepath.Join(c.Dir, "charon.log")
	if err := os.WriteFile(confFile, []byte(strongswanConf(cfg)), 0o600); err != nil {
		return c, err
	}
	swc := cfg.SwanctlConf
	if swc == "" {
		if swc, err = swanctlConf(&c.Cfg); err != nil {
			return c, err
		}
	}
	if err := os.WriteFile(filepath.Join(swanctlDir, "swanctl.conf"), []byte(swc), 0o600); err != nil {
		return c, err
	}
	for rel, b := range cfg.Files {
		f := filepath.Join(swanctlDir, filepath.Clean("/"+rel))
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			return c, err
		}
		if err := os.WriteFile(f, b, 0o600); err != nil {
			return c, err
		}
	}
	logf, err := os.Create(c.Log)
	if err != nil {
		return c, err
	}
	// ip netns exec and unshare (without --fork) exec in place and sh
	// execs charon: cmd's pid is charon's. unshare -m makes the mounts
	// private to this charon.
	script := fmt.Sprintf("mount --bind %s /var/run && mount --bind %s /etc/swanctl && exec %s", shq(runDir), shq(swanctlDir), cfg.Charon)
	if r := cfg.Root; r != "" {
		// The tree's /var/run is a symlink to /run: mount on /run. It
		// needs /dev (/dev/net/tun for kernel-libipsec, /dev/urandom)
		// and /proc; chroot execs charon in place.
		script = fmt.Sprintf("mount --bind %s %s && mount --bind %s %s && mount --rbind /dev %s && mount -t proc proc %s && exec chroot %s %s",
			shq(runDir), shq(filepath.Join(r, "run")), shq(swanctlDir), shq(filepath.Join(r, "etc/swanctl")),
			shq(filepath.Join(r, "dev")), shq(filepath.Join(r, "proc")), shq(r), cfg.Charon)
	}
	c.cmd = exec.Command("ip", "netns", "exec", cfg.NS, "unshare", "-m", "--propagation", "private", "sh", "-c", script)
	c.cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+c.conf)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C on the terminal reaches us, and we
	// stop charon ourselves, in order.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return c, fmt.Errorf("strongswan: start charon in %s: %w", cfg.NS, err)
	}
	c.PID = c.cmd.Process.Pid
	c.exited = make(chan error, 1)
	go func() { c.exited <- c.cmd.Wait(); logf.Close() }()

	// The vici socket answers once charon has loaded its plugins.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.Swanctl(ctx, "--stats"); err == nil {
			break
		}
		select {
		case err := <-c.exited:
			c.exited <- err
			return c, fmt.Errorf("strongswan: charon in %s exited: %v\n%s", cfg.NS, err, tail(c.Log, 20))
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("strongswan: charon in %s: vici not answering after 15s\n%s", cfg.NS, tail(c.Log, 20))
		}
	}
	if out, err := c.Swanctl(ctx, "--load-all"); err != nil {
		return c, fmt.Errorf("strongswan: swanctl --load-all in %s: %w\n%s", cfg.NS, err, out)
	}
	if cfg.Local.IsValid() {
		// kernel-libipsec routes a child's remote TS into its TUN device
		// (table 220, before main). When the peer's own address is in
		// that TS, as when vifsec speaks IKE for a VM, charon's IKE and
		// ESP-in-UDP to it would loop into the TUN: keep what charon
		// sends from its own address on the main table.
		fam := "-4"
		if cfg.Local.Is6() {
			fam = "-6"
		}
		rule := []string{"rule", "add", "from", cfg.Local.String(), "lookup", "main", "priority", "50"}
		_ = exec.Command("ip", append([]string{"-n", cfg.NS, fam, "rule", "del"}, rule[2:]...)...).Run() // an earlier charon's
		if err := run(ctx, append([]string{"ip", "-n", cfg.NS, fam}, rule...)...); err != nil {
			return c, fmt.Errorf("strongswan: %w", err)
		}
	}
	if cfg.MTU > 0 {
		// kernel-libipsec creates its TUN device when the plugin loads,
		// before vici answers.
		if err := run(ctx, "ip", "-n", cfg.NS, "link", "set", TunDevice, "mtu", fmt.Sprint(cfg.MTU)); err != nil {
			return c, fmt.Errorf("strongswan: %w", err)
		}
	}
	return c, nil
}

// Swanctl runs swanctl against this charon (in its network and mount
// namespaces) and returns the combined output.
func (c *Charon) Swanctl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ns := []string{"-t", fmt.Sprint(c.PID), "-m", "-n"}
	if c.Cfg.Root != "" {
		ns = append(ns, "-r", "-w") // charon's root: its swanctl
	}
	cmd := exec.CommandContext(ctx, "nsenter", append(append(ns, "swanctl"), args...)...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+c.conf)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Initiate brings up the child SA (swanctl --initiate --child) and waits
// for it, up to 20 s.
func (c *Charon) Initiate(ctx context.Context) error {
	out, err := c.Swanctl(ctx, "--initiate", "--child", c.Cfg.Child, "--timeout", "20")
	if err != nil || !strings.Contains(out, "completed successfully") {
		return fmt.Errorf("strongswan: initiate %s in %s: %v\n%s\ncharon log:\n%s", c.Cfg.Child, c.Cfg.NS, err, out, tail(c.Log, 30))
	}
	return nil
}

// ListSAs returns `swanctl --list-sas`: SPIs, algorithms, encapsulation
// (TUNNEL-in-UDP) and byte counters.
func (c *Charon) ListSAs(ctx context.Context) (string, error) {
	return c.Swanctl(ctx, "--list-sas")
}

// Stop terminates charon (SIGTERM, then SIGKILL after 5 s) and removes the
// temp directory StartCharon made. Its mount namespace goes with it; its
// TUN device goes with the network namespace or with charon. Safe to call
// more than once.
func (c *Charon) Stop() error {
	var err error
	if c.cmd != nil && c.cmd.Process != nil && c.exited != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
			err = fmt.Errorf("strongswan: charon %d in %s ignored SIGTERM for 5s; killed", c.PID, c.Cfg.NS)
		}
		c.exited <- nil
		c.cmd = nil
	}
	if c.rmDir {
		os.RemoveAll(c.Dir)
		c.rmDir = false
	}
	return err
}

func strongswanConf(cfg CharonConfig) string {
	var b strings.Builder
	// A daemon reads the section of its own name (charon,
	// charon-systemd).
	fmt.Fprintf(&b, "%s {\n  load = %s\n", filepath.Base(cfg.Charon), cfg.Plugins)
	if cfg.NoRoutes {
		b.WriteString("  install_routes = no\n")
	}
	b.WriteString("  filelog {\n    stderr {\n      default = 1\n      time_format = %T\n    }\n  }\n")
	b.WriteString("  plugins {\n    kernel-libipsec {\n      allow_peer_ts = yes\n")
	fmt.Fprintf(&b, "      raw_esp = %s\n", map[bool]string{true: "yes", false: "no"}[cfg.RawESP])
	b.WriteString("    }\n  }\n")
	b.WriteString("}\n")
	return b.String()
}

// swanctlConf renders the connection fields (filling defaults into cfg).
func swanctlConf(cfg *CharonConfig) (string, error) {
	if !cfg.Local.IsValid() || !cfg.Remote.IsValid() {
		return "", errors.New("strongswan: CharonConfig needs Local and Remote (or SwanctlConf)")
	}
	if cfg.PSK == "" {
		return "", errors.New("strongswan: CharonConfig needs PSK (or SwanctlConf)")
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.Conn, "lab")
	def(&cfg.Child, "lab")
	def(&cfg.LocalID, cfg.Local.String())
	def(&cfg.RemoteID, cfg.Remote.String())
	def(&cfg.IKEProposals, "aes128gcm16-prfsha256-modp2048")
	def(&cfg.ESPProposals, "aes128gcm16")
	def(&cfg.Mode, "tunnel")
	def(&cfg.StartAction, "none")
	if len(cfg.LocalTS) == 0 {
		cfg.LocalTS = []netip.Prefix{netip.PrefixFrom(cfg.Local, cfg.Local.BitLen())}
	}
	if len(cfg.RemoteTS) == 0 {
		cfg.RemoteTS = []netip.Prefix{netip.PrefixFrom(cfg.Remote, cfg.Remote.BitLen())}
	}
	ts := func(ps []netip.Prefix) string {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = p.String()
		}
		return strings.Join(s, ",")
	}
	// swanctl.conf wants newlines, not semicolons, between settings.
	var b strings.Builder
	fmt.Fprintf(&b, `connections {
  %s {
    local_addrs = %s
    remote_addrs = %s
    proposals = %s
    local {
      auth = psk
      id = %s
    }
    remote {
      auth = psk
      id = %s
    }
    children {
      %s {
        local_ts = %s
        remote_ts = %s
        esp_proposals = %s
        mode = %s
        start_action = %s
      }
    }
  }
}
secrets {
  ike-lab {
    id-1 = %s
    id-2 = %s
    secret = %q
  }
}
`, cfg.Conn, cfg.Local, cfg.Remote, cfg.IKEProposals, cfg.LocalID, cfg.RemoteID,
		cfg.Child, ts(cfg.LocalTS), ts(cfg.RemoteTS), cfg.ESPProposals, cfg.Mode, cfg.StartAction,
		cfg.LocalID, cfg.RemoteID, cfg.PSK)
	return b.String(), nil
}

// shq quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// tail returns the last n lines of file, for error messages.
func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Kill ends charon with SIGKILL, as a crashed peer: it sends no Delete.
// Stop still removes its directory afterwards.
func (c *Charon) Kill() {
	if c.cmd == nil || c.cmd.Process == nil || c.exited == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
	c.exited <- nil
	c.cmd = nil
}
