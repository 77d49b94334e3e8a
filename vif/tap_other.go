//go:build !linux

package vif

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// TapDevice is a tap interface vifsec created; Linux only.
type TapDevice struct{}

// CreateTap needs Linux's /dev/net/tun: on other systems it returns an
// error wrapping errors.ErrUnsupported.
func CreateTap(name, nsName string) (*TapDevice, error) {
	return nil, fmt.Errorf("create tap --dev %s: %w on %s (needs Linux /dev/net/tun)", name, errors.ErrUnsupported, runtime.GOOS)
}

func (t *TapDevice) Name() string                { return "" }
func (t *TapDevice) Index() int                  { return 0 }
func (t *TapDevice) Read(p []byte) (int, error)  { return 0, errors.ErrUnsupported }
func (t *TapDevice) Write(p []byte) (int, error) { return 0, errors.ErrUnsupported }
func (t *TapDevice) File() *os.File              { return nil }
func (t *TapDevice) ReleaseQueue() error         { return errors.ErrUnsupported }
func (t *TapDevice) Close() error                { return nil }
