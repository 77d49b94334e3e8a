//go:build !linux

package vif

import (
	"errors"
	"fmt"
	"runtime"
)

var errGuard = fmt.Errorf("%w on %s (needs Linux tc)", errors.ErrUnsupported, runtime.GOOS)

// InstallGuard needs Linux tc: on other systems it returns an error
// wrapping errors.ErrUnsupported.
func InstallGuard(name, nsName string) (int, error) { return 0, errGuard }

// CheckGuard needs Linux tc.
func CheckGuard(name, nsName string) (int, error) { return 0, errGuard }

// RemoveGuard needs Linux tc.
func RemoveGuard(name, nsName string, index int) error { return errGuard }
