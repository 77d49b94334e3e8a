//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vifsec/vifsec/api"
)

// The integration tests build the real vifsecd and vifsec binaries once,
// start vifsecd on a temporary state directory and socket, and drive the
// vifsec binary. Every process a test starts is killed by PID in
// t.Cleanup, also when the test fails.

var (
	buildOnce          sync.Once
	buildErr           error
	binDir             string
	vifsecdBin, cliBin string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func buildBinaries(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "vifsec-it-")
		if buildErr != nil {
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = "/usr/local/go/bin/go"
		}
		for _, b := range []struct{ pkg, out string }{
			{"github.com/vifsec/vifsec/cmd/vifsecd", "vifsecd"},
			{"github.com/vifsec/vifsec/cmd/vifsec", "vifsec"},
		} {
			out, err := exec.Command(gobin, "build", "-o", filepath.Join(binDir, b.out), b.pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
		vifsecdBin, cliBin = filepath.Join(binDir, "vifsecd"), filepath.Join(binDir, "vifsec")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
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

type daemonProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	state   string
	sock    string
	metrics string // host:port, "" if off
	log     *syncBuffer
	done    chan struct{}
	exit    int
}

type env struct {
	t     *testing.T
	dir   string
	state string
	sock  string
}

func newEnv(t *testing.T) *env {
	buildBinaries(t)
	// Unix socket paths are limited to 108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "vit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &env{t: t, dir: dir, state: filepath.Join(dir, "state"), sock: filepath.Join(dir, "d.sock")}
}

var metricsRe = regexp.MustCompile(`msg="vifsecd ready".* metrics=(\S+)`)

// start starts vifsecd with metrics on a free port and waits until it
// answers on its socket.
func (e *env) start() *daemonProc {
	e.t.Helper()
	p := e.spawn("--metrics", "127.0.0.1:0")
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.done:
			e.t.Fatalf("vifsecd exited with %d before it was ready:\n%s", p.exit, p.log.String())
		default:
		}
		if m := metricsRe.FindStringSubmatch(p.log.String()); m != nil {
			p.metrics = m[1]
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("vifsecd not ready after 15s:\n%s", p.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// spawn starts vifsecd with extra flags and does not wait.
func (e *env) spawn(extra ...string) *daemonProc {
	e.t.Helper()
	args := append([]string{"--state", e.state, "--socket", e.sock}, extra...)
	p := &daemonProc{t: e.t, state: e.state, sock: e.sock, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(vifsecdBin, args...)
	p.cmd.Stderr = p.log
	p.cmd.Stdout = p.log
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	pid := p.cmd.Process.Pid
	go func() {
		p.cmd.Wait()
		p.exit = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			syscall.Kill(pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its status.
func (p *daemonProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.exit
	case <-time.After(timeout):
		p.t.Fatalf("vifsecd did not exit within %v:\n%s", timeout, p.log.String())
		return -1
	}
}

// stop sends SIGTERM and returns the exit status.
func (p *daemonProc) stop() int {
	p.t.Helper()
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	return p.wait(10 * time.Second)
}

func (p *daemonProc) kill9() {
	p.t.Helper()
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	p.wait(10 * time.Second)
}

func (p *daemonProc) scrape() string {
	p.t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs the vifsec binary against e's socket.
func (e *env) cli(args ...string) result {
	e.t.Helper()
	return runCLIBin(e.t, append([]string{"--socket", e.sock}, args...)...)
}

func runCLIBin(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else {
			t.Fatalf("vifsec %v: %v", args, err)
		}
	}
	return r
}

// ok runs the CLI and fails the test unless it exits 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.cli(args...)
	if r.code != 0 {
		e.t.Fatalf("vifsec %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// snapshot is every list the CLI can print, as JSON, to compare states:
// the configured state only, not the uplink port's state (up or down,
// which the data path reports as it opens the port).
func (e *env) snapshot() string {
	e.t.Helper()
	var b bytes.Buffer
	for _, v := range [][]string{{"tenant", "list"}, {"vm", "list"}, {"uplink", "show"}, {"sa", "list"}, {"sp", "list"}, {"config", "show"}, {"overlay", "fdb", "list"}} {
		out := e.ok(append([]string{"--format", "json"}, v...)...).stdout
		if v[0] == "uplink" {
			var u map[string]any
			if err := json.Unmarshal([]byte(out), &u); err != nil {
				e.t.Fatalf("uplink show: %v\n%s", err, out)
			}
			delete(u, "state")
			delete(u, "reason")
			j, _ := json.Marshal(u)
			out = string(j) + "\n"
		}
		b.WriteString(out)
	}
	return b.String()
}

func newClient(t *testing.T, sock string) *api.Client {
	c := api.NewClient(sock)
	t.Cleanup(c.Close)
	return c
}
