// Package etcdtest runs real etcd members (Debian's etcd-server package,
// /usr/bin/etcd) on 127.0.0.1 for tests and benchmarks: a cluster of one
// or more members on free ports, with data directories under a given
// directory, started, killed and restarted by PID.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binary is the etcd server this package runs; $VIFSEC_ETCD overrides it.
func Binary() string {
	if b := os.Getenv("VIFSEC_ETCD"); b != "" {
		return b
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	return "/usr/bin/etcd"
}

// Available reports whether the etcd server binary can be run.
func Available() bool {
	_, err := os.Stat(Binary())
	return err == nil
}

// Member is one etcd member.
type Member struct {
	Name      string
	Dir       string // data directory
	ClientURL string // http(s)://127.0.0.1:PORT
	PeerURL   string
	Log       string // its log file

	c    *Cluster
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a set of members that form one etcd cluster.
type Cluster struct {
	Members []*Member
	// Extra flags given to every member (e.g. TLS flags).
	Extra []string
	// Scheme of the client URLs: "http" or "https".
	Scheme string
	token  string
}

// Options configure Start.
type Options struct {
	// Members is the cluster size; 0 means 1.
	Members int
	// Extra flags for every member.
	Extra []string
	// TLS makes the client URLs https (the TLS flags go in Extra).
	TLS bool
}

// Start starts a new cluster with data directories under dir and waits
// until every member serves clients. On error everything started is
// stopped.
func Start(ctx context.Context, dir string, o Options) (*Cluster, error) {
	n := max(o.Members, 1)
	c := &Cluster{Extra: o.Extra, Scheme: "http", token: fmt.Sprintf("vifsec-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	if o.TLS {
		c.Scheme = "https"
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			Dir:       filepath.Join(dir, fmt.Sprintf("m%d.etcd", i)),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", c.Scheme, ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			Log:       filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
			c:         c,
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		if err := m.start(strings.Join(initial, ",")); err != nil {
			c.Close()
			return nil, err
		}
	}
	for _, m := range c.Members {
		if err := m.waitReady(ctx, 20*time.Second); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// freePorts returns n TCP ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Endpoints are the members' client addresses as HOST:PORT.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.HostPort())
	}
	return out
}

// URL is the vifsecd --store URL of the cluster with prefix.
func (c *Cluster) URL(prefix string) string {
	return "etcd://" + strings.Join(c.Endpoints(), ",") + "/" + strings.TrimPrefix(prefix, "/")
}

// HostPort is the member's client address.
func (m *Member) HostPort() string {
	_, hp, _ := strings.Cut(m.ClientURL, "://")
	return hp
}

func (m *Member) start(initial string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(m.Dir), 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(m.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{
		"--name", m.Name, "--data-dir", m.Dir,
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", m.c.token,
		// Faster failure detection than the defaults (100 ms / 1 s): the
		// members share one machine.
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-level", "warn",
	}
	args = append(args, m.c.Extra...)
	cmd := exec.Command(Binary(), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd member %s: %w", m.Name, err)
	}
	m.cmd = cmd
	m.done = make(chan struct{})
	done := m.done
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	return nil
}

// initialCluster is the --initial-cluster of the cluster.
func (c *Cluster) initialCluster() string {
	var s []string
	for _, m := range c.Members {
		s = append(s, m.Name+"="+m.PeerURL)
	}
	return strings.Join(s, ",")
}

// PID is the member's process id, 0 if it is not running.
func (m *Member) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	select {
	case <-m.done:
		return 0
	default:
	}
	return m.cmd.Process.Pid
}

// Kill sends SIGKILL to the member (by PID) and waits for it to exit.
func (m *Member) Kill() { m.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits (SIGKILL after 5 s).
func (m *Member) Stop() { m.signal(syscall.SIGTERM) }

func (m *Member) signal(sig syscall.Signal) {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped member again on its data directory and waits
// until it serves (with a quorum, if the rest of the cluster is up).
func (m *Member) Restart(ctx context.Context) error {
	if m.PID() != 0 {
		return fmt.Errorf("etcd member %s is running", m.Name)
	}
	if err := m.start(m.c.initialCluster()); err != nil {
		return err
	}
	return nil
}

// WaitReady waits until every running member answers /health (which needs
// a quorum).
func (c *Cluster) WaitReady(ctx context.Context, timeout time.Duration) error {
	for _, m := range c.Members {
		if m.PID() == 0 {
			continue
		}
		if err := m.waitReady(ctx, timeout); err != nil {
			return err
		}
	}
	return nil
}

func (m *Member) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := m.health(ctx); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			log, _ := os.ReadFile(m.Log)
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			return fmt.Errorf("etcd member %s at %s not healthy after %v: %v\n%s", m.Name, m.ClientURL, timeout, err, bytes.TrimSpace(log))
		}
		m.mu.Lock()
		done := m.done
		m.mu.Unlock()
		select {
		case <-done:
			log, _ := os.ReadFile(m.Log)
			return fmt.Errorf("etcd member %s exited:\n%s", m.Name, bytes.TrimSpace(log))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// health asks the member's /health endpoint over a plain TCP HTTP
// request; with TLS it only checks that the port accepts connections.
func (m *Member) health(ctx context.Context) error {
	conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", m.HostPort())
	if err != nil {
		return err
	}
	defer conn.Close()
	if m.c.Scheme == "https" {
		return nil
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "GET /health HTTP/1.0\r\nHost: %s\r\n\r\n", m.HostPort())
	var buf bytes.Buffer
	buf.ReadFrom(conn)
	if !bytes.Contains(buf.Bytes(), []byte(`"health":"true"`)) {
		return fmt.Errorf("/health: %q", strings.TrimSpace(lastLine(buf.String())))
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Close kills every member (by PID) and waits for them to exit. Data
// directories are left to the caller (a test's TempDir).
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.Kill()
	}
}
