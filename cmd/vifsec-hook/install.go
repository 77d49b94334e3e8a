package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vifsec/vifsec/api"
	"github.com/vifsec/vifsec/internal/buildinfo"
	"github.com/vifsec/vifsec/internal/libvirt"
)

// libvirtPidFiles are where the daemons that run qemu hooks write their
// PID: the monolithic libvirtd and the modular virtqemud.
var libvirtPidFiles = []string{"/run/libvirtd.pid", "/run/virtqemud.pid"}

// installFlags are the flags of install and uninstall; they drive parsing
// and the manual page alike.
type installFlags struct {
	h           libvirt.HookFile
	reload      bool
	socket, bin string
}

func (f *installFlags) define(verb string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vifsec-hook "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.h.Dir, "hooks-dir", libvirt.DefaultHooksDir, "libvirt's hooks directory")
	fs.StringVar(&f.h.Name, "name", "vifsec", "the hook file's name in HOOKS-DIR/qemu.d")
	fs.BoolVar(&f.h.Force, "force", false, "replace or remove a file at that path that vifsec-hook did not write")
	fs.BoolVar(&f.reload, "reload", false, "send SIGHUP to the running libvirtd or virtqemud, which reads hooks at start-up and on SIGHUP")
	fs.StringVar(&f.socket, "socket", "", "install: vifsecd's socket, written into the hook file (default "+api.DefaultSocket+")")
	fs.StringVar(&f.bin, "bin", "", "install: absolute path of vifsec-hook (default: where make install put it, else this program)")
	return fs
}

// runInstall is `vifsec-hook install|uninstall`.
func runInstall(verb string, args []string, stdout, stderr io.Writer) int {
	var inf installFlags
	fs := inf.define(verb, stderr)
	h, reload, socket, bin := &inf.h, &inf.reload, &inf.socket, &inf.bin
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vifsec-hook %s: unexpected argument %q\n", verb, fs.Arg(0))
		return exitUsage
	}
	if verb == "uninstall" {
		removed, err := h.Uninstall()
		if err != nil {
			fmt.Fprintln(stderr, "vifsec-hook uninstall:", err)
			return exitRefuse
		}
		if removed {
			fmt.Fprintln(stdout, "removed", h.Path())
		} else {
			fmt.Fprintln(stdout, "not installed:", h.Path(), "does not exist")
		}
		return reloadLibvirt(verb, *reload, removed, stdout, stderr)
	}

	h.Socket = *socket
	h.Bin = *bin
	if h.Bin == "" {
		h.Bin = buildinfo.InstalledPath("vifsec-hook")
	}
	if h.Bin == "" {
		exe, err := os.Executable()
		if err == nil {
			exe, err = filepath.EvalSymlinks(exe)
		}
		if err != nil {
			fmt.Fprintln(stderr, "vifsec-hook install: cannot tell where this program is; give --bin:", err)
			return exitRefuse
		}
		h.Bin = exe
	}
	changed, err := h.Install()
	if err != nil {
		fmt.Fprintln(stderr, "vifsec-hook install:", err)
		return exitRefuse
	}
	if changed {
		fmt.Fprintln(stdout, "installed", h.Path())
	} else {
		fmt.Fprintln(stdout, "already installed:", h.Path())
	}
	for _, o := range h.OtherHooks() {
		fmt.Fprintln(stdout, "kept: libvirt runs", o, "as well")
	}
	return reloadLibvirt(verb, *reload, changed, stdout, stderr)
}

// reloadLibvirt sends SIGHUP to running libvirt daemons if asked, or says
// that it is needed.
func reloadLibvirt(verb string, reload, changed bool, stdout, stderr io.Writer) int {
	for _, pf := range libvirtPidFiles {
		b, err := os.ReadFile(pf)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 || syscall.Kill(pid, 0) != nil {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(pf), ".pid")
		if !reload {
			if changed {
				fmt.Fprintf(stdout, "%s (pid %d) reads hooks when it starts or gets SIGHUP: run vifsec-hook %s --reload, or kill -HUP %d\n", name, pid, verb, pid)
			}
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			fmt.Fprintf(stderr, "vifsec-hook: SIGHUP to %s (pid %d): %v\n", name, pid, err)
			return exitRefuse
		}
		fmt.Fprintf(stdout, "%s (pid %d) reloaded (SIGHUP)\n", name, pid)
	}
	return exitOK
}
