// Package buildinfo holds what the linker stamps into every vifsec binary:
// the release version. It imports only the standard library, so the
// libvirt hook and the CLI can report their version without linking the
// daemon.
//
// What it must not do: depend on any other vifsec package.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time by the Makefile:
//
//	go build -ldflags "-X github.com/vifsec/vifsec/internal/buildinfo.Version=0.3.0"
//
// A plain `go build` leaves "dev", and String then adds the VCS revision
// the Go toolchain recorded, if any.
var Version = "dev"

// SbinDir is where `make install` and `make deb` put vifsecd and
// vifsec-hook (-X ...buildinfo.SbinDir=/usr/sbin); "" for a binary that
// was only built. `vifsec-hook install` writes SbinDir/vifsec-hook into
// libvirt's hook file, so the hook runs the installed program, not a copy
// in whatever tree it was built in.
var SbinDir = ""

// InstalledPath is the installed path of an sbin program, or "" when the
// binary was not built for installation.
func InstalledPath(program string) string {
	if SbinDir == "" {
		return ""
	}
	return SbinDir + "/" + program
}

// String is the line a binary prints for --version: its name, the
// version, the VCS revision of a development build, and the Go release.
func String(program string) string {
	v := Version
	if v == "dev" {
		if rev := revision(); rev != "" {
			v += "+" + rev
		}
	}
	return fmt.Sprintf("%s %s (%s %s/%s)", program, v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// revision is the short VCS revision recorded in the binary, with
// "-dirty" when the tree had changes, or "".
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}
