package libvirt

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestHookFile(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin dir", "vifsec-hook")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	// A stand-in for vifsec-hook that prints its arguments.
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nfor a in \"$@\"; do echo \"[$a]\"; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	hooks := filepath.Join(dir, "hooks")
	os.MkdirAll(hooks, 0o755)
	// An existing hook stays as it is.
	os.WriteFile(filepath.Join(hooks, "qemu"), []byte("#!/bin/sh\nexit 0\n"), 0o755)

	h := &HookFile{Dir: hooks, Bin: bin, Socket: "/run/it's/s.sock"}
	if h.Path() != filepath.Join(hooks, "qemu.d", "vifsec") {
		t.Fatalf("Path %s", h.Path())
	}
	changed, err := h.Install()
	if err != nil || !changed {
		t.Fatalf("Install = %v, %v", changed, err)
	}
	st, err := os.Stat(h.Path())
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("hook file %v %v", st, err)
	}
	// The file runs the binary with the socket and libvirt's arguments,
	// quoting included.
	out, err := exec.Command(h.Path(), "web 1", "start", "begin", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := "[--socket]\n[/run/it's/s.sock]\n[web 1]\n[start]\n[begin]\n[-]\n"; string(out) != want {
		t.Fatalf("hook ran with\n%s\nwant\n%s", out, want)
	}
	if changed, err := h.Install(); err != nil || changed {
		t.Fatalf("second Install = %v, %v; want false, nil", changed, err)
	}
	if others := h.OtherHooks(); len(others) != 1 || others[0] != filepath.Join(hooks, "qemu") {
		t.Fatalf("OtherHooks = %v", others)
	}
	// A new socket rewrites the file.
	h.Socket = "/run/other.sock"
	if changed, err := h.Install(); err != nil || !changed {
		t.Fatalf("Install with a new socket = %v, %v", changed, err)
	}
	b, _ := os.ReadFile(h.Path())
	if !strings.Contains(string(b), "--socket '/run/other.sock'") {
		t.Fatalf("file:\n%s", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(h.Path())); len(ents) != 1 {
		t.Fatalf("left-overs in qemu.d: %v", ents)
	}

	// Someone else's file is neither replaced nor removed without force.
	other := &HookFile{Dir: hooks, Name: "theirs", Bin: bin}
	os.WriteFile(other.Path(), []byte("#!/bin/sh\necho theirs\n"), 0o755)
	if _, err := other.Install(); err == nil || !strings.Contains(err.Error(), "not written by vifsec-hook install") {
		t.Fatalf("Install over a foreign file: %v", err)
	}
	if _, err := other.Uninstall(); err == nil {
		t.Fatal("Uninstall of a foreign file succeeded")
	}
	if b, _ := os.ReadFile(other.Path()); string(b) != "#!/bin/sh\necho theirs\n" {
		t.Fatalf("foreign file changed: %s", b)
	}
	if _, err := (&HookFile{Dir: hooks, Bin: "relative/vifsec-hook"}).Install(); err == nil || !strings.Contains(err.Error(), "--bin") {
		t.Fatalf("relative --bin: %v", err)
	}

	if removed, err := h.Uninstall(); err != nil || !removed {
		t.Fatalf("Uninstall = %v, %v", removed, err)
	}
	if removed, err := h.Uninstall(); err != nil || removed {
		t.Fatalf("second Uninstall = %v, %v", removed, err)
	}
	if b, _ := os.ReadFile(filepath.Join(hooks, "qemu")); string(b) != "#!/bin/sh\nexit 0\n" {
		t.Fatalf("existing hook changed: %q", b)
	}
}
