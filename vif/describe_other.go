//go:build !linux

package vif

import (
	"errors"
	"fmt"
	"runtime"
)

// Describe tells what interface name is in network namespace nsName.
// It needs rtnetlink: on other systems it returns an error wrapping
// errors.ErrUnsupported.
func Describe(name, nsName string) (Info, error) {
	return Info{}, fmt.Errorf("describe --dev %s: %w on %s (needs Linux rtnetlink)", name, errors.ErrUnsupported, runtime.GOOS)
}
