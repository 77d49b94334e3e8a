// Command vifsec-hook is libvirt's qemu hook for vifsec: libvirt runs it
// at every QEMU domain event with the domain XML on stdin, and it asks
// vifsecd to attach the domain's interfaces when the domain starts and to
// detach them when it stops, so a VM is protected from the moment its
// interface exists.
//
//	vifsec-hook [--socket PATH] [--timeout 5s] DOMAIN OPERATION SUBOP EXTRA < domain.xml
//	vifsec-hook install [--hooks-dir /etc/libvirt/hooks] [--name vifsec] [--socket PATH] [--bin PATH] [--force] [--reload]
//	vifsec-hook uninstall [--hooks-dir /etc/libvirt/hooks] [--name vifsec] [--force] [--reload]
//	vifsec-hook --version
//
// Only domains that carry vifsec's metadata element (see
// examples/libvirt) are touched; for every other domain it exits 0 at once.
// It never calls libvirt (libvirt waits for its hooks: a call back would
// deadlock) and prints nothing on stdout (libvirt reads a hook's stdout as
// replacement XML at migrate and restore).
//
// Exit status: 0, or 1 when it refuses a domain's start (fail="closed"),
// or 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/buildinfo"
	"github.com/vifsec/vifsec/internal/libvirt"
)

const (
	exitOK     = 0
	exitRefuse = 1
	exitUsage  = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// hookFlags are the flags of a hook call; they drive parsing and the
// manual page alike.
type hookFlags struct {
	socket, sysfs string
	timeout       time.Duration
	syslog        bool
}

func (hf *hookFlags) define(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vifsec-hook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&hf.socket, "socket", "", "vifsecd's socket (default $VIFSEC_SOCKET, else "+api.DefaultSocket+")")
	fs.DurationVar(&hf.timeout, "timeout", 5*time.Second, "give up on vifsecd after this long")
	fs.StringVar(&hf.sysfs, "sysfs", "/sys", "where sysfs is mounted (to find a hostdev VF's netdev)")
	fs.BoolVar(&hf.syslog, "syslog", true, "also log to syslog (/dev/log), where libvirt does not discard it")
	return fs
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "--man") {
		// Not as a hook: libvirt always passes four arguments.
		if args[0] == "--man" {
			manPage().Write(stdout)
		} else {
			fmt.Fprintln(stdout, buildinfo.String("vifsec-hook"))
		}
		return exitOK
	}
	if len(args) > 0 && (args[0] == "install" || args[0] == "uninstall") && !(len(args) == 4 && isOperation(args[1])) {
		return runInstall(args[0], args[1:], stdout, stderr)
	}
	var hf hookFlags
	fs := hf.define(stderr)
	socket, timeout, sysfs, useSyslog := &hf.socket, &hf.timeout, &hf.sysfs, &hf.syslog
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vifsec-hook [--socket PATH] [--timeout 5s] DOMAIN OPERATION SUBOP EXTRA < domain.xml")
		fmt.Fprintln(stderr, "       vifsec-hook install [--hooks-dir DIR] [--name vifsec] [--socket PATH] [--bin PATH] [--force] [--reload]")
		fmt.Fprintln(stderr, "       vifsec-hook uninstall [--hooks-dir DIR] [--name vifsec] [--force] [--reload]")
		fmt.Fprintln(stderr, "       vifsec-hook --version")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 4 {
		fmt.Fprintf(stderr, "vifsec-hook: want DOMAIN OPERATION SUBOP EXTRA (as libvirt calls it), got %d arguments\n", fs.NArg())
		fs.Usage()
		return exitUsage
	}
	a := fs.Args()

	// Read the XML whatever the operation (libvirt writes it to every
	// hook), and the rest of an XML too large to read: libvirt is not
	// left writing into a pipe nobody reads.
	xmlb, err := io.ReadAll(io.LimitReader(stdin, libvirt.MaxDomainXML+1))
	if err == nil && len(xmlb) > libvirt.MaxDomainXML {
		io.Copy(io.Discard, stdin)
	}
	if !libvirt.HasMetadata(xmlb) {
		if err != nil {
			fmt.Fprintf(stderr, "vifsec-hook: %s %s: cannot read the domain XML on stdin: %v\n", a[0], a[1], err)
		}
		return exitOK
	}
	log := newLogger(stderr, a[0], a[1], *useSyslog)
	defer log.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c := api.NewClient(api.SocketPath(*socket))
	defer c.Close()
	h := &hook{c: c, log: log, sysfs: *sysfs}
	return h.handle(ctx, a[0], a[1], xmlb)
}

// isOperation reports whether s is one of libvirt's qemu hook operations.
func isOperation(s string) bool {
	switch s {
	case "prepare", "start", "started", "stopped", "release", "migrate", "restore", "reconnect", "attach":
		return true
	}
	return false
}

// hook handles one call.
type hook struct {
	c     *api.Client
	log   *logger
	sysfs string
}

// handle acts on one operation for a domain whose XML mentions vifsec's
// namespace and returns the exit status.
//
//   - prepare: check that the metadata is right, vifsecd answers, the
//     tenants exist and nothing else holds the VM names or (vlan, mac);
//     the device does not exist yet.
//   - start (and attach, an external QEMU taken over): attach every
//     interface (PUT /v2/vms/NAME: attach, move to the new vnetN, or
//     nothing if attached as asked). With fail="closed", then wait until
//     vifsecd reports each attached (its guard on: the kernel forwards
//     none of the guest's frames); a refused interface (macvlan,
//     macvtap: libvirt type='direct') or one not attached within the
//     timeout refuses the start. With fail="open" the hook does not wait.
//   - reconnect (libvirtd restarted with the domain running): the same
//     as start, but it never fails: libvirt kills a domain whose
//     reconnect hook fails, and a running guest is not stopped over a
//     control-plane hiccup (the daemon's reconciliation retries).
//   - stopped, release: detach the domain's VMs; cannot fail.
//   - started, migrate, restore: nothing.
//
// With fail="closed" a problem at prepare or start exits 1, which aborts
// the start (libvirt shows this hook's stderr); with fail="open" (the
// default) it is logged and the domain starts unprotected.
func (h *hook) handle(ctx context.Context, domain, op string, xmlb []byte) int {
	d, perr := libvirt.ParseDomain(xmlb)
	if perr == nil && d.Meta == nil {
		return exitOK // the namespace is mentioned, but no <vifsec:vm>
	}
	fail := libvirt.FailOpen
	switch {
	case d != nil && d.Meta != nil:
		fail = d.Meta.Fail
	case perr != nil:
		fail, _ = libvirt.FailModeOf(xmlb)
	}
	var err error
	switch op {
	case "prepare":
		err = h.prepare(ctx, d, perr)
	case "start", "attach":
		err = h.start(ctx, d, perr, fail)
	case "reconnect":
		if err := h.start(ctx, d, perr, libvirt.FailOpen); err != nil {
			h.log.Error("domain keeps running, possibly unprotected (vifsecd's libvirt reconciliation retries): " + err.Error())
		}
		return exitOK
	case "stopped", "release":
		h.stop(ctx, d, xmlb)
		return exitOK
	default:
		return exitOK
	}
	if err == nil {
		return exitOK
	}
	if fail == libvirt.FailClosed {
		h.log.Error("refusing to start domain " + domain + " unprotected (fail=\"closed\"): " + err.Error())
		return exitRefuse
	}
	h.log.Warn("domain " + domain + " starts unprotected (fail=\"open\"): " + err.Error())
	return exitOK
}

func (h *hook) prepare(ctx context.Context, d *libvirt.Domain, perr error) error {
	if perr != nil {
		return perr
	}
	bs, err := d.Plan(&libvirt.PlanOptions{SysFS: h.sysfs})
	if err != nil {
		return err
	}
	tenants, err := h.c.Tenants(ctx)
	if err != nil {
		return err
	}
	vms, err := h.c.VMs(ctx)
	if err != nil {
		return err
	}
	var errs []error
	origin := libvirt.Origin(d.UUID)
	for _, b := range bs {
		v := b.VM
		if !hasTenant(tenants, v.Tenant) {
			errs = append(errs, fmt.Errorf("VM %s: vifsecd has no tenant %q; add it first (vifsec tenant add --tenant %s)", v.Name, v.Tenant, v.Tenant))
		}
		for _, o := range vms {
			switch {
			case o.Name == v.Name && o.Origin != origin:
				errs = append(errs, fmt.Errorf("VM %s: the name is taken by a VM attached by %s; name the interface with <vifsec:interface mac=%q name=\"...\"/> or detach that VM", v.Name, originText(o.Origin), v.MAC))
			case o.Name != v.Name && o.VLAN == v.VLAN && strings.EqualFold(o.MAC, v.MAC.String()):
				errs = append(errs, fmt.Errorf("VM %s: VM %s already has mac %s on vlan %d", v.Name, o.Name, v.MAC, v.VLAN))
			}
		}
	}
	if d.Meta.Policy != "" {
		if err := h.checkPolicy(ctx, d.Meta.Policy, bs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkPolicy checks the domain's policy="NAME": an IKE policy NAME of
// the domain's tenant must exist and speak for one of its VMs (vifsec
// policy create --vm NAME-OF-VM; it may be created before the domain first
// starts, and waits for the VM). With fail="closed" the domain then does
// not start unless IKE will protect it.
func (h *hook) checkPolicy(ctx context.Context, name string, bs []libvirt.Binding) error {
	if len(bs) == 0 {
		return fmt.Errorf("policy=%q: the domain has no interface for vifsec, so no VM the policy could speak for", name)
	}
	tenants := map[string]bool{}
	vms := map[string]bool{}
	for _, b := range bs {
		tenants[b.VM.Tenant] = true
		vms[b.VM.Name] = true
	}
	var names []string
	for tn := range tenants {
		ps, err := h.c.Policies(ctx, tn)
		if err != nil {
			return fmt.Errorf("policy=%q: %w", name, err)
		}
		for _, p := range ps {
			if p.Name != name {
				continue
			}
			if vms[p.VM] {
				return nil
			}
			return fmt.Errorf("policy=%q: IKE policy %s of tenant %s speaks for VM %q, not for this domain's VMs (%s); bind it with vifsec policy modify --tenant %s --name %s --vm NAME",
				name, name, tn, p.VM, strings.Join(sortedKeys(vms), ", "), tn, name)
		}
		names = append(names, tn)
	}
	sort.Strings(names)
	return fmt.Errorf("policy=%q: tenant %s has no IKE policy %s; create it first (vifsec policy create --tenant %s --name %s --vm %s ...)",
		name, strings.Join(names, ", "), name, names[0], name, strings.Join(sortedKeys(vms), "|"))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func hasTenant(ts []api.Tenant, name string) bool {
	for _, t := range ts {
		if t.Name == name {
			return true
		}
	}
	return false
}

func originText(o string) string {
	if o == "" {
		return "an operator (vifsec vm attach)"
	}
	return o
}

// start attaches every interface. With fail closed, a failure detaches
// what this call attached, so a refused start leaves nothing behind.
func (h *hook) start(ctx context.Context, d *libvirt.Domain, perr error, fail libvirt.FailMode) error {
	if perr != nil {
		return perr
	}
	bs, err := d.Plan(&libvirt.PlanOptions{NeedDev: true, SysFS: h.sysfs})
	if err != nil {
		return err
	}
	var errs []error
	var done []string
	for _, b := range bs {
		v := b.VM
		if err := h.put(ctx, b); err != nil {
			errs = append(errs, fmt.Errorf("VM %s: %w", v.Name, err))
			continue
		}
		done = append(done, v.Name)
		h.log.Info(fmt.Sprintf("VM %s attached: tenant %s, dev %s, mac %s, vlan %d", v.Name, v.Tenant, v.Dev, v.MAC, v.VLAN))
	}
	if len(errs) == 0 && fail == libvirt.FailClosed {
		if err := h.waitAttached(ctx, done); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 && fail == libvirt.FailClosed {
		// The wait may have used up ctx: the detaches get a moment of
		// their own.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		for _, n := range done {
			if _, err := h.c.DetachVM(dctx, n); err != nil {
				h.log.Warn("VM " + n + " not detached after the refused start: " + err.Error())
			} else {
				h.log.Info("VM " + n + " detached again: the start is refused")
			}
		}
	}
	return errors.Join(errs...)
}

// waitAttached returns when vifsecd reports every VM in names attached:
// the guard on its interface, so the kernel forwards none of the guest's
// frames, and its port open. libvirt starts QEMU after the start hook
// returns, so with fail="closed" the guest's first frame finds its
// interface protected. A refusal (a macvlan or macvtap) fails at once;
// any other state is waited out until ctx ends, and then fails with it.
func (h *hook) waitAttached(ctx context.Context, names []string) error {
	pending := map[string]string{}
	for _, n := range names {
		pending[n] = "not reported by vifsecd"
	}
	for {
		vms, err := h.c.VMs(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		for _, v := range vms {
			if _, ok := pending[v.Name]; !ok {
				continue
			}
			switch {
			case v.VIF == "attached":
				delete(pending, v.Name)
			case strings.HasPrefix(v.VIF, "refused"):
				return fmt.Errorf("VM %s: vifsecd cannot protect interface %s: %s", v.Name, v.Dev, v.VIF)
			default:
				pending[v.Name] = v.VIF
			}
		}
		if len(pending) == 0 {
			return nil
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			var errs []error
			for _, n := range names {
				if why, ok := pending[n]; ok {
					errs = append(errs, fmt.Errorf("VM %s: interface not attached in time (%s)", n, why))
				}
			}
			return errors.Join(errs...)
		case <-t.C:
		}
	}
}

// put attaches b's VM or moves it to its device; a VM of this domain
// whose VLAN, MAC, tenant or addresses changed is detached and attached
// again (which vifsecd refuses while SAs or SPs use it).
func (h *hook) put(ctx context.Context, b libvirt.Binding) error {
	req := attachRequest(b)
	_, err := h.c.PutVM(ctx, req)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != "exists" {
		return err
	}
	vms, lerr := h.c.VMs(ctx)
	if lerr != nil {
		return err
	}
	for _, o := range vms {
		if o.Name != b.VM.Name || o.Origin != b.VM.Origin {
			continue
		}
		cur, cerr := vmOf(o)
		if cerr != nil || !libvirt.IdentityDiffers(cur, b.VM) {
			return err
		}
		if _, err := h.c.DetachVM(ctx, o.Name); err != nil {
			return fmt.Errorf("attached as tenant %s, mac %s, vlan %d, and the domain now says otherwise; it cannot be detached: %w", o.Tenant, o.MAC, o.VLAN, err)
		}
		_, err = h.c.PutVM(ctx, req)
		return err
	}
	return err
}

// stop detaches the domain's VMs: those vifsecd lists with its origin.
func (h *hook) stop(ctx context.Context, d *libvirt.Domain, xmlb []byte) {
	uuid := ""
	if d != nil {
		uuid = d.UUID
	}
	if uuid == "" {
		uuid = libvirt.SniffUUID(xmlb)
	}
	if uuid == "" {
		h.log.Warn("domain XML has no readable <uuid>; its VMs are detached by vifsecd's libvirt reconciliation")
		return
	}
	vms, err := h.c.VMs(ctx)
	if err != nil {
		h.log.Warn("VMs not detached now (vifsecd's libvirt reconciliation detaches them): " + err.Error())
		return
	}
	origin := libvirt.Origin(uuid)
	for _, v := range vms {
		if v.Origin != origin {
			continue
		}
		_, err := h.c.DetachVM(ctx, v.Name)
		var ae *api.Error
		switch {
		case err == nil:
			h.log.Info("VM " + v.Name + " detached")
		case errors.As(err, &ae) && ae.Code == "not_found":
		case errors.As(err, &ae) && ae.Code == "in_use":
			h.log.Info("VM " + v.Name + " stays attached for its SAs and SPs; its device is gone, so nothing is served: " + err.Error())
		default:
			h.log.Warn("VM " + v.Name + " not detached: " + err.Error())
		}
	}
}

// logger writes one line per event to stderr (libvirt shows a failing
// hook's stderr to whoever started the domain, and discards it
// otherwise) and, when syslog is there, to syslog as daemon.* with tag
// vifsec-hook. Lines carry no timestamp (syslog and the journal add one);
// with $JOURNAL_STREAM set, stderr lines start with the sd-daemon level
// prefix ("<3>").
type logger struct {
	w       io.Writer
	prefix  string
	sys     *syslog.Writer
	journal bool
}

func newLogger(w io.Writer, domain, op string, useSyslog bool) *logger {
	l := &logger{w: w, prefix: domain + " " + op + ": ", journal: os.Getenv("JOURNAL_STREAM") != ""}
	if useSyslog {
		if s, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "vifsec-hook"); err == nil {
			l.sys = s
		}
	}
	return l
}

func (l *logger) line(level int, msg string) {
	p := "vifsec-hook: "
	if l.journal {
		p = fmt.Sprintf("<%d>%s", level, p)
	}
	for _, ln := range strings.Split(msg, "\n") {
		fmt.Fprintln(l.w, p+l.prefix+ln)
	}
}

func (l *logger) Info(msg string) {
	l.line(6, msg)
	if l.sys != nil {
		l.sys.Info(l.prefix + msg)
	}
}

func (l *logger) Warn(msg string) {
	l.line(4, msg)
	if l.sys != nil {
		l.sys.Warning(l.prefix + msg)
	}
}

func (l *logger) Error(msg string) {
	l.line(3, msg)
	if l.sys != nil {
		l.sys.Err(l.prefix + msg)
	}
}

func (l *logger) Close() {
	if l.sys != nil {
		l.sys.Close()
	}
}
