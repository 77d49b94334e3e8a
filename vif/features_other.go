//go:build !linux

package vif

import (
	"errors"
	"fmt"
	"runtime"
)

// Features reads every named netdev feature of interface name in
// network namespace nsName. It needs ethtool netlink: on other systems
// it returns an error wrapping errors.ErrUnsupported.
func Features(name, nsName string) (FeatureSet, error) {
	return FeatureSet{}, featuresError(name, nsName,
		fmt.Errorf("%w on %s (needs Linux ethtool netlink)", errors.ErrUnsupported, runtime.GOOS))
}
