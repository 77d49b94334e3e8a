package libvirt

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultHooksDir is where libvirt looks for hook scripts.
const DefaultHooksDir = "/etc/libvirt/hooks"

// hookMarker is the line that says a hook file is vifsec-hook's: install
// replaces and uninstall removes only files that carry it (or --force).
const hookMarker = "# vifsec-hook: installed by `vifsec-hook install`"

// HookFile describes the hook file `vifsec-hook install` writes:
// DIR/qemu.d/NAME, a shell script that execs vifsec-hook with the daemon's
// socket. libvirt (6.5 and later) runs DIR/qemu and then every executable
// in DIR/qemu.d in name order, each with the domain XML on stdin, so an
// existing DIR/qemu hook, or others in qemu.d, keep working untouched.
type HookFile struct {
	// Dir is the hooks directory; "" means DefaultHooksDir.
	Dir string
	// Name is the file's name in qemu.d; "" means "vifsec".
	Name string
	// Bin is the absolute path of vifsec-hook.
	Bin string
	// Socket is passed as --socket ("" leaves it out: the hook then uses
	// the default socket, since libvirt runs hooks with a clean
	// environment where $VIFSEC_SOCKET is not set).
	Socket string
	// Force replaces or removes a file at the path that vifsec-hook did
	// not write.
	Force bool
}

// Path returns where the hook file goes.
func (h *HookFile) Path() string {
	dir, name := h.Dir, h.Name
	if dir == "" {
		dir = DefaultHooksDir
	}
	if name == "" {
		name = "vifsec"
	}
	return filepath.Join(dir, "qemu.d", name)
}

// Script returns the hook file's content.
func (h *HookFile) Script() []byte {
	var b bytes.Buffer
	b.WriteString("#!/bin/sh\n")
	b.WriteString(hookMarker + "; `vifsec-hook uninstall` removes it.\n")
	b.WriteString("# libvirt runs it at every QEMU domain event with the domain XML on stdin;\n")
	b.WriteString("# domains without vifsec metadata are left alone.\n")
	b.WriteString("exec " + shellQuote(h.Bin))
	if h.Socket != "" {
		b.WriteString(" --socket " + shellQuote(h.Socket))
	}
	b.WriteString(" \"$@\"\n")
	return b.Bytes()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Install writes the hook file. It is idempotent: changed is false when
// the file already says what it would write. A file at the path that
// vifsec-hook did not write is refused unless Force.
func (h *HookFile) Install() (changed bool, err error) {
	if !filepath.IsAbs(h.Bin) {
		return false, fmt.Errorf("--bin: %q is not an absolute path; libvirt runs hooks from /", h.Bin)
	}
	if st, err := os.Stat(h.Bin); err != nil || st.Mode()&0o111 == 0 {
		return false, fmt.Errorf("--bin: %s is not an executable file", h.Bin)
	}
	p := h.Path()
	want := h.Script()
	old, err := os.ReadFile(p)
	switch {
	case err == nil && bytes.Equal(old, want):
		if st, err := os.Stat(p); err == nil && st.Mode().Perm() == 0o755 {
			return false, nil
		}
	case err == nil && !bytes.Contains(old, []byte(hookMarker)) && !h.Force:
		return false, fmt.Errorf("%s exists and was not written by vifsec-hook install; move it away, choose another --name, or use --force", p)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false, err
	}
	// Written beside, not executable until complete, then renamed into
	// place: libvirt never runs half a file.
	tmp, err := os.CreateTemp(filepath.Dir(p), ".vifsec-hook-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(want); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return false, err
	}
	return true, nil
}

// Uninstall removes the hook file; removed is false if there was none. A
// file that vifsec-hook did not write is refused unless Force.
func (h *HookFile) Uninstall() (removed bool, err error) {
	p := h.Path()
	old, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !bytes.Contains(old, []byte(hookMarker)) && !h.Force {
		return false, fmt.Errorf("%s was not written by vifsec-hook install; left alone (use --force to remove it)", p)
	}
	if err := os.Remove(p); err != nil {
		return false, err
	}
	return true, nil
}

// OtherHooks lists the other qemu hooks libvirt runs besides h's file, for
// the operator to see they are kept.
func (h *HookFile) OtherHooks() []string {
	dir := filepath.Dir(filepath.Dir(h.Path()))
	var out []string
	if st, err := os.Stat(filepath.Join(dir, "qemu")); err == nil && !st.IsDir() {
		out = append(out, filepath.Join(dir, "qemu"))
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "qemu.d"))
	for _, e := range ents {
		p := filepath.Join(dir, "qemu.d", e.Name())
		if p != h.Path() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, p)
		}
	}
	return out
}
