package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A libreswan peer in the lab: pluto (libreswan 5.2) chrooted in the
// Debian 13 root `make lab-libreswan` builds, in a lab network namespace
// and its own mount namespace. A private directory is bind-mounted over
// the root's /run (pluto's control socket), /etc/ipsec.d (certificates),
// /var/lib/ipsec/nss (its NSS database, made anew at each start) and
// /etc/ipsec.conf and /etc/ipsec.secrets, so the root is never written.
//
// Pluto negotiates IKE in userspace but installs Child SAs with the
// kernel's XFRM: on a kernel without ESP (CONFIG_INET_ESP unset) the IKE
// SA comes up and every Child SA fails to install.

// PlutoPath is the daemon in the root.
const PlutoPath = "/usr/libexec/ipsec/pluto"

// PlutoConfig describes one pluto.
type PlutoConfig struct {
	NS   string // network namespace (must exist)
	Root string // the libreswan root
	// Conf and Secrets are ipsec.conf and ipsec.secrets, verbatim.
	Conf, Secrets string
	// CAPEM, if set, is trusted for peer certificates (NSS trust CT,,);
	// CertPEM and KeyPEM, if set, are pluto's own certificate and key,
	// imported under the nickname "peer" (leftcert=peer).
	CAPEM, CertPEM, KeyPEM []byte
}

// Pluto is a running pluto. Its methods may be called from one goroutine
// at a time.
type Pluto struct {
	Cfg    PlutoConfig
	Dir    string // private directory, removed by Stop
	Log    string // pluto's log (stderr and the setup's output)
	PID    int
	cmd    *exec.Cmd
	exited chan error
}

// StartPluto writes cfg under a private directory, sets up pluto's NSS
// database (and certificates), starts pluto in cfg.NS and waits until it
// answers on its control socket. On error nothing it started is left
// running.
func StartPluto(ctx context.Context, cfg PlutoConfig) (p *Pluto, err error) {
	if cfg.NS == "" || cfg.Root == "" {
		return nil, errors.New("libreswan: PlutoConfig.NS and Root must be set")
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, PlutoPath)); err != nil {
		return nil, fmt.Errorf("libreswan: pluto missing in %s (make lab-libreswan): %w", cfg.Root, err)
	}
	dir, err := os.MkdirTemp("", "vifsec-pluto-")
	if err != nil {
		return nil, err
	}
	p = &Pluto{Cfg: cfg, Dir: dir, Log: filepath.Join(dir, "pluto.log")}
	defer func() {
		if err != nil {
			p.Stop()
			p = nil
		}
	}()
	for _, d := range []string{"run/pluto", "nss", "ipsec.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return p, err
		}
	}
	files := map[string]string{"ipsec.conf": cfg.Conf, "ipsec.secrets": cfg.Secrets}
	if cfg.CAPEM != nil {
		files["ipsec.d/ca.pem"] = string(cfg.CAPEM)
	}
	if cfg.CertPEM != nil {
		files["ipsec.d/peer.pem"], files["ipsec.d/peer.key"] = string(cfg.CertPEM), string(cfg.KeyPEM)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return p, err
		}
	}
	r := cfg.Root
	binds := [][2]string{{"run", "run"}, {"nss", "var/lib/ipsec/nss"}, {"ipsec.d", "etc/ipsec.d"},
		{"ipsec.conf", "etc/ipsec.conf"}, {"ipsec.secrets", "etc/ipsec.secrets"}}
	var script []string
	for _, b := range binds {
		script = append(script, fmt.Sprintf("mount --bind %s %s", shq(filepath.Join(dir, b[0])), shq(filepath.Join(r, b[1]))))
	}
	in := "chroot " + shq(r) + " "
	script = append(script,
		fmt.Sprintf("mount --rbind /dev %s", shq(filepath.Join(r, "dev"))),
		fmt.Sprintf("mount -t proc proc %s", shq(filepath.Join(r, "proc"))),
		in+"certutil -N -d sql:/var/lib/ipsec/nss --empty-password")
	if cfg.CAPEM != nil {
		script = append(script, in+"certutil -A -d sql:/var/lib/ipsec/nss -n labca -t CT,, -a -i /etc/ipsec.d/ca.pem")
	}
	if cfg.CertPEM != nil {
		script = append(script,
			in+"openssl pkcs12 -export -in /etc/ipsec.d/peer.pem -inkey /etc/ipsec.d/peer.key -name peer -passout pass: -out /etc/ipsec.d/peer.p12",
			in+"pk12util -i /etc/ipsec.d/peer.p12 -d sql:/var/lib/ipsec/nss -W ''")
	}
	script = append(script, "exec "+in+PlutoPath+" --nofork --stderrlog --config /etc/ipsec.conf")
	logf, err := os.Create(p.Log)
	if err != nil {
		return p, err
	}
	// ip netns exec, unshare and chroot exec in place: cmd's pid is
	// pluto's.
	p.cmd = exec.Command("ip", "netns", "exec", cfg.NS, "unshare", "-m", "--propagation", "private", "sh", "-c", strings.Join(script, " && "))
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return p, fmt.Errorf("libreswan: start pluto in %s: %w", cfg.NS, err)
	}
	p.PID = p.cmd.Process.Pid
	p.exited = make(chan error, 1)
	go func() { p.exited <- p.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := p.Ipsec(ctx, "whack", "--status"); err == nil {
			return p, nil
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			return p, fmt.Errorf("libreswan: pluto in %s exited: %v\n%s", cfg.NS, err, tail(p.Log, 20))
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("libreswan: pluto in %s not answering after 15s\n%s", cfg.NS, tail(p.Log, 20))
		}
	}
}

// Ipsec runs `ipsec ARGS` in pluto's namespaces and root and returns the
// combined output.
func (p *Pluto) Ipsec(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", fmt.Sprint(p.PID), "-m", "-n", "-r", "-w", "ipsec"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Stop terminates pluto (SIGTERM, then SIGKILL after 5 s) and removes its
// directory. Safe to call more than once.
func (p *Pluto) Stop() {
	if p.cmd != nil && p.cmd.Process != nil && p.exited != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		p.exited <- nil
		p.cmd = nil
	}
	if p.Dir != "" {
		os.RemoveAll(p.Dir)
		p.Dir = ""
	}
}
