//go:build !linux

package ikebench

import (
	"errors"
	"fmt"
	"runtime"
)

// NetnsPair is two network namespaces joined by a veth pair (Linux).
type NetnsPair struct{ Network }

// Netns is Linux only.
func Netns() (*NetnsPair, error) {
	return nil, fmt.Errorf("ikebench: network namespaces: %w on %s", errors.ErrUnsupported, runtime.GOOS)
}

func (n *NetnsPair) Close() error { return nil }
