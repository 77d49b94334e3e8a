// Package packaging holds what turns the build into an installed service:
// the systemd unit (vifsecd.service), the default file for its flags
// (vifsecd.default), the Debian package's control files (debian/), and
// find-go.sh, which finds or fetches the Go toolchain go.mod asks for.
// `make install` and `make deb` use them; its test installs the package
// `make deb` built and runs the daemon from it.
//
// It holds no code the programs link.
package packaging
