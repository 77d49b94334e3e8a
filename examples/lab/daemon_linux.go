package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Daemon is a vifsecd running inside a gateway namespace.
type Daemon struct {
	GW     *Gateway
	Dir    string // state, socket and log live here
	Socket string
	Log    string
	bin    string
	cmd    *exec.Cmd
	exited chan error
}

// StartDaemon starts bin/vifsecd in gw's namespace with its state under
// dir, passing it any extra flags.
func StartDaemon(ctx context.Context, bin string, gw *Gateway, dir string, extra ...string) (*Daemon, error) {
	d := &Daemon{GW: gw, Dir: dir, Socket: filepath.Join(dir, "vifsecd.sock"), Log: filepath.Join(dir, "vifsecd.log"), bin: bin}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(d.Log)
	if err != nil {
		return nil, err
	}
	args := append([]string{"netns", "exec", gw.NS, filepath.Join(bin, "vifsecd"),
		"--state", filepath.Join(dir, "state"), "--socket", d.Socket, "--metrics", "off", "--log-level", logLevel()}, extra...)
	d.cmd = exec.Command("ip", args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := d.CLI(ctx, "config", "show"); err == nil {
			return d, nil
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			log, _ := os.ReadFile(d.Log)
			return nil, fmt.Errorf("vifsecd on gateway %s exited: %v\n%s", gw.Name, err, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("vifsecd on gateway %s: socket %s not answering after 10s", gw.Name, d.Socket)
		}
	}
}

// CLI runs the vifsec CLI against this daemon and returns its stdout;
// on failure the error carries stderr.
func (d *Daemon) CLI(ctx context.Context, args ...string) (string, error) {
	return d.CLIStdin(ctx, "", args...)
}

// CLIStdin is CLI with stdin: a PSK for `policy create --auth-method PSK`,
// a PEM for `certificate install` or `crl add`.
func (d *Daemon) CLIStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "vifsec"), append([]string{"--socket", d.Socket}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("vifsec %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Stop sends SIGTERM and waits (then SIGKILL after 5s). It reports an
// unclean exit.
func (d *Daemon) Stop() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		return err
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		err := <-d.exited
		d.exited <- err
		return fmt.Errorf("vifsecd on gateway %s ignored SIGTERM for 5s; killed", d.GW.Name)
	}
}

// Kill ends the daemon with SIGKILL, as a crash would (no clean stop),
// and waits for it to exit. A later Stop returns nil.
func (d *Daemon) Kill() error {
	if err := d.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("vifsecd on gateway %s: kill: %w", d.GW.Name, err)
	}
	<-d.exited
	d.exited <- nil
	return nil
}

// logLevel is the lab daemons' --log-level: info, or $VIFSEC_LAB_LOG.
func logLevel() string {
	if l := os.Getenv("VIFSEC_LAB_LOG"); l != "" {
		return l
	}
	return "info"
}
