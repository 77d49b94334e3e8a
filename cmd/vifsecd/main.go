// Command vifsecd is the vifsec host daemon: it restores the configured
// tenants, VMs, uplink, SAs and SPs from --state, serves the control API
// on --socket and Prometheus metrics on --metrics.
//
//	vifsecd [--state DIR] [--socket PATH] [--metrics ADDR|off] [--log-level LEVEL] [--log-format text|json]
//	vifsecd --version
//
// SIGTERM or SIGINT: stop serving, flush state, exit 0. Under systemd
// (Type=notify) it reports READY=1 once the API and metrics serve.
//
// SIGHUP: keep running and re-check: the embedded store is read again and
// the running state converged to it (it changes nothing unless the two
// disagree, which is logged; a fleet store is followed continuously
// anyway), and the uplink and every VM's interface are probed at once
// (missing devices re-opened without waiting for the periodic check).
// Each step is logged.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vifsec/vifsec/api"
	apiserver "github.com/vifsec/vifsec/internal/api"
	"github.com/vifsec/vifsec/internal/buildinfo"
	"github.com/vifsec/vifsec/internal/daemon"
	"github.com/vifsec/vifsec/internal/ikeio"
	"github.com/vifsec/vifsec/internal/metrics"
	"github.com/vifsec/vifsec/internal/sdnotify"
	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/sa/ike"
)

// version is stamped at link time into internal/buildinfo.
var version = buildinfo.Version

const (
	defaultState   = "/var/lib/vifsec"
	defaultMetrics = "127.0.0.1:9483"
	stateFile      = "state.db"
)

func main() {
	if o, _, err := parseFlags(os.Args[1:], io.Discard); err == nil && (o.version || o.man) {
		if o.man {
			manPage().Write(os.Stdout)
		} else {
			fmt.Println(buildinfo.String("vifsecd"))
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

type options struct {
	state, socket, metrics, logLevel string
	logFormat                        string // --log-format text|json
	version                          bool   // --version
	man                              bool   // --man: print the manual page (make install)
	gro                              bool
	udpGSO                           bool // --udp-gso: UDP GSO trains toward the uplink
	// workers is --workers: data-path queues, one worker each, of the
	// uplink (each VIF min(workers, attach.MaxVIFQueues)); 0 = the
	// CPUs available (runDataPath).
	workers int
	// cryptoHelpers is --crypto-helpers: the data path's crypto helpers
	// (datapath.Engine.SetCryptoHelpers); -1 = one per CPU beyond the
	// first, 0 = none.
	cryptoHelpers int
	libvirt       string        // --libvirt auto|off|SOCKET (libvirt.go)
	fleet         fleetOptions  // --store etcd://... (fleet.go)
	ikeRetransmit time.Duration // --ike-retransmit-timeout (ike.Config)
	ikeTries      int           // --ike-retransmit-tries
}

// flagSet defines vifsecd's flags into o; it drives parsing and the
// manual page alike.
func flagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vifsecd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.state, "state", defaultState, "state directory (embedded store, created if missing)")
	fs.StringVar(&o.socket, "socket", api.DefaultSocket, "control API unix socket (mode 0600)")
	fs.StringVar(&o.metrics, "metrics", defaultMetrics, "Prometheus /metrics listen address, or off")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text (logfmt) or json, one object per line")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.BoolVar(&o.man, "man", false, "print the manual page (roff) and exit")
	fs.BoolVar(&o.gro, "gro", true, "coalesce a flow's TCP segments into super-frames toward guests (ext)")
	o.udpGSO = true
	fs.Var((*boolFlag)(&o.udpGSO), "udp-gso", "send the ESP-in-UDP or VXLAN datagrams made from one guest TSO super-frame to the uplink as one UDP GSO (GSO_UDP_L4) super-frame, when the uplink's device takes them; false sends each datagram as its own frame (ext)")
	fs.Var((*workersFlag)(&o.workers), "workers", "data-path workers: the uplink is read by `N` queues (a PACKET_FANOUT hash group, so a flow stays on one), each VM's interface by one (its SAs leave in sequence order); 0 = one per CPU available (ext)")
	o.cryptoHelpers = -1
	fs.Var((*cryptoHelpersFlag)(&o.cryptoHelpers), "crypto-helpers", "data-path crypto helpers: `N` goroutines that seal or open long runs of one SA's packets on otherwise idle CPUs, each polling about 100 µs for the next run before it sleeps; -1 = one per CPU beyond the first, 0 = none (each worker does its own crypto: for hosts whose CPUs are busy), N above GOMAXPROCS-1 gets GOMAXPROCS-1 (ext)")
	fs.StringVar(&o.libvirt, "libvirt", "auto", "reconcile VMs of libvirt domains: auto (libvirt's read-only sockets), off, or a socket path (ext)")
	fs.DurationVar(&o.ikeRetransmit, "ike-retransmit-timeout", 4*time.Second, "IKE: first retransmission after this, then ×1.8 each try, as strongSwan's retransmit_timeout (ext)")
	fs.IntVar(&o.ikeTries, "ike-retransmit-tries", 5, "IKE: retransmissions before a peer is declared dead, as strongSwan's retransmit_tries (ext)")
	addFleetFlags(fs, &o.fleet)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vifsecd [--state DIR] [--socket PATH] [--metrics ADDR|off] [--log-level debug|info|warn|error] [--log-format text|json] [--version] [--gro=true|false] [--udp-gso=true|false] [--workers N] [--crypto-helpers N] [--libvirt auto|off|SOCKET] [--ike-retransmit-timeout 4s] [--ike-retransmit-tries 5] "+fleetUsage)
		fs.PrintDefaults()
	}
	return fs
}

// usageError is a command line vifsecd cannot read (a flag it does not
// know, a flag without its value, an argument): exit status 2. A flag
// given a value it does not accept is bad input: 1, as vifsec's.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func parseFlags(args []string, stderr io.Writer) (*options, *slog.LevelVar, error) {
	o := &options{}
	fs := flagSet(o, stderr)
	if err := fs.Parse(args); err != nil {
		// The flag package's errors for a value its flag refuses start
		// with "invalid" (invalid value, invalid boolean value): bad
		// input. The others (a flag not defined, one missing its
		// argument) are usage errors.
		if errors.Is(err, flag.ErrHelp) || strings.HasPrefix(err.Error(), "invalid ") {
			return nil, nil, err
		}
		return nil, nil, usageError{err}
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return nil, nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if o.version || o.man {
		return o, nil, nil
	}
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("--log-level: %q is not a level; use debug, info, warn or error", o.logLevel)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, nil, fmt.Errorf("--log-format: %q is not a format; use text or json", o.logFormat)
	}
	if o.state == "" || o.socket == "" || o.metrics == "" {
		return nil, nil, errors.New("--state, --socket and --metrics must not be empty (use --metrics off to disable metrics)")
	}
	if o.ikeRetransmit < 100*time.Millisecond || o.ikeRetransmit > time.Minute {
		return nil, nil, fmt.Errorf("--ike-retransmit-timeout: %v out of range; use 100ms to 1m", o.ikeRetransmit)
	}
	if o.ikeTries < 1 || o.ikeTries > 20 {
		return nil, nil, fmt.Errorf("--ike-retransmit-tries: %d out of range; use 1 to 20", o.ikeTries)
	}
	if err := o.fleet.check(); err != nil {
		return nil, nil, err
	}
	return o, lv, nil
}

// dataPath is the options of o that shape the data path.
func (o *options) dataPath() dataPathOptions {
	return dataPathOptions{gro: o.gro, udpGSO: o.udpGSO, workers: o.workers, cryptoHelpers: o.cryptoHelpers}
}

// maxWorkers bounds --workers: a PACKET_FANOUT group holds at most 256
// sockets.
const maxWorkers = 256

// workersFlag is --workers: 0 (one per CPU) or 1 to maxWorkers.
type workersFlag int

func (w *workersFlag) String() string { return strconv.Itoa(int(*w)) }

func (w *workersFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxWorkers {
		return fmt.Errorf("use 0 (one per CPU available) or 1 to %d workers", maxWorkers)
	}
	*w = workersFlag(n)
	return nil
}

// cryptoHelpersFlag is --crypto-helpers: -1 (one per CPU beyond the
// first), 0 (none) or a number of helpers, which the engine caps at one
// per CPU beyond the first.
type cryptoHelpersFlag int

func (c *cryptoHelpersFlag) String() string { return strconv.Itoa(int(*c)) }

func (c *cryptoHelpersFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 {
		return errors.New("use -1 (one per CPU beyond the first), 0 (none: each worker does its own crypto) or a number of helpers")
	}
	*c = cryptoHelpersFlag(n)
	return nil
}

// boolFlag is a boolean flag (--flag, --flag=true, --flag=false) whose
// refusal of another value says what it accepts.
type boolFlag bool

func (b *boolFlag) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolFlag) IsBoolFlag() bool { return true }

func (b *boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("use true or false")
	}
	*b = boolFlag(v)
	return nil
}

// run is the daemon; it returns the exit status. ready, if not nil, is
// called with the socket path and the metrics address ("" if off) once
// both are serving.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(socket, metricsAddr string)) int {
	o, lv, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "vifsecd:", err)
		if errors.As(err, new(usageError)) {
			return 2
		}
		return 1
	}
	if o.version || o.man { // main prints them on stdout; here they go with the logs
		if o.man {
			manPage().Write(stderr)
		} else {
			fmt.Fprintln(stderr, buildinfo.String("vifsecd"))
		}
		return 0
	}
	log := newLogger(stderr, o.logFormat, lv)
	if err := serve(ctx, o, log, ready); err != nil {
		log.Error("vifsecd: " + err.Error())
		return 1
	}
	return 0
}

// newLogger logs to w at level lv, as logfmt text or one JSON object per
// line (for journald's and log shippers' parsers).
func newLogger(w io.Writer, format string, lv *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, o *options, log *slog.Logger, ready func(string, string)) (err error) {
	lock, err := store.LockDir(o.state)
	if err != nil {
		return err
	}
	defer lock.Unlock()

	var d *daemon.Daemon
	var handler http.Handler
	var fl *fleetHost
	var st *store.Bolt // the embedded store; nil with a fleet store
	if o.fleet.enabled() {
		if fl, err = openFleet(ctx, o, log); err != nil {
			return err
		}
		defer fl.close()
		d = fl.f.Daemon()
		handler = apiserver.NewFleetHandler(fl.f, log, version)
	} else {
		if st, err = store.OpenBolt(filepath.Join(o.state, stateFile), time.Second); err != nil {
			return err
		}
		defer func() {
			if cerr := st.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("flush state: %w", cerr)
			}
		}()
		if d, err = daemon.New(st, &daemon.Config{Logger: log, SeqAnchor: seqAnchor(o.socket, "bolt:"+absPath(o.state))}); err != nil {
			return err
		}
		handler = apiserver.WithoutFleet(apiserver.NewHandler(d, log, version))
	}

	hl := &health{store: func() string { return "" }, d: d}
	if fl != nil {
		hl.store = func() string {
			if h := fl.f.Health(); h.State != "ok" {
				return "etcd " + h.State + ": " + h.Error
			}
			return ""
		}
	}

	ln, err := listenSocket(o.socket)
	if err != nil {
		return err
	}
	defer os.Remove(o.socket)

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("api: %w", err)
		}
	})

	var msrv *http.Server
	metricsAddr := ""
	if o.metrics != "off" {
		mln, err := net.Listen("tcp", o.metrics)
		if err != nil {
			srv.Close()
			wg.Wait()
			return fmt.Errorf("--metrics %s: %w", o.metrics, err)
		}
		metricsAddr = mln.Addr().String()
		reg := metrics.NewRegistry(d, d.SADB(), version)
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
		mux.HandleFunc("GET /healthz", hl.healthz)
		mux.HandleFunc("GET /readyz", hl.readyz)
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() {
			if err := msrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		})
	}

	// SIGHUP is caught from here on: it must never kill the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	recheck := make(chan struct{}, 1)

	runCtx, cancel := context.WithCancel(ctx)
	wg.Go(func() { d.Run(runCtx) })
	if fl != nil {
		wg.Go(func() { fl.f.Run(runCtx) })
	}
	ig := ikeio.New(d, log.With("part", "ike"), &ike.Config{RetransmitTimeout: o.ikeRetransmit, RetransmitTries: o.ikeTries})
	wg.Go(func() { ig.Run(runCtx) })
	wg.Go(func() {
		runDataPath(runCtx, d, log, o.dataPath(), ig.AttachDataPath, recheck)
	})
	wg.Go(func() { runLibvirt(runCtx, d, log, o.libvirt) })

	snap := d.Snapshot()
	log.Info("vifsecd ready", "version", version, "state", o.state, "socket", o.socket, "metrics", orOff(metricsAddr),
		"tenants", len(snap.Tenants), "vms", len(snap.VMs), "sas", d.SADB().Len(), "ipsec_enabled", snap.Enabled)
	if ready != nil {
		ready(o.socket, metricsAddr)
	}
	notify := sdnotify.FromEnv()
	if err := notify.Ready(fmt.Sprintf("serving %d VMs, %d SAs", len(snap.VMs), d.SADB().Len())); err != nil {
		log.Warn("could not tell the service manager we are ready", "err", err)
	}

	var serveErr error
	var conv *daemon.Converger // SIGHUP's, made at the first one
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "reason", context.Cause(ctx))
			break wait
		case serveErr = <-errc:
			break wait
		case <-hup:
			conv = reload(log, d, st, conv)
			select {
			case recheck <- struct{}{}:
			default: // one is pending already
			}
		}
	}
	notify.Stopping()
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if msrv != nil {
		if err := msrv.Shutdown(sctx); err != nil {
			msrv.Close()
		}
	}
	wg.Wait()
	if serveErr != nil {
		return serveErr
	}
	log.Info("vifsecd stopped", "generation", d.Generation())
	return nil
}

// seqAnchor is the file that binds the store's sequence reservations to
// this host's last start (internal/daemon, seqres.go): beside the API
// socket (by default in /run, which a reboot empties, not a crash), one
// per store.
func seqAnchor(socket, storeID string) string {
	h := sha256.Sum256([]byte(storeID))
	return filepath.Join(filepath.Dir(socket), "seq-"+hex.EncodeToString(h[:8])+".anchor")
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// reload is SIGHUP's first step: with the embedded store st, read it
// again and converge d to it (conv, made on the first call, is returned
// for the next); with a fleet store (st nil) there is nothing to read,
// the store is followed continuously. It logs what it found and never
// fails the daemon.
func reload(log *slog.Logger, d *daemon.Daemon, st *store.Bolt, conv *daemon.Converger) *daemon.Converger {
	log.Info("SIGHUP: re-reading the state and re-checking the uplink and VM interfaces")
	if st == nil {
		log.Info("SIGHUP: the fleet store is followed continuously; nothing to re-read")
		return conv
	}
	recs, err := st.Load()
	if err != nil {
		log.Error("SIGHUP: state not re-read; running on as before", "err", err)
		return conv
	}
	if conv == nil {
		conv = daemon.NewConvergerFrom(d, recs)
	}
	res := conv.Converge(recs, nil)
	log.Info("SIGHUP: state re-read", "records", len(recs), "changed", res.Changed, "problems", len(res.Problems),
		"generation", d.Generation())
	return conv
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

// listenSocket listens on the unix socket path with mode 0600, creating
// its directory (0700) if needed. A stale socket left by a daemon that
// died is replaced; a live one (another daemon answering on it) is not.
func listenSocket(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--socket %s exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("--socket %s: another daemon is serving on it; stop it or give a different --socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--socket %s: remove stale socket: %w", path, err)
		}
	}
	// The umask makes the socket 0600 from its creation: there is no
	// moment at which another user could connect.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return ln, nil
}
