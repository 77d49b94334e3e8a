//go:build !linux

package vif

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// WatchLinks is not supported off Linux: it returns an error wrapping
// errors.ErrUnsupported.
func WatchLinks(ctx context.Context, nsName string, events chan<- LinkEvent) error {
	return fmt.Errorf("link watch: %w on %s (needs Linux rtnetlink)", errors.ErrUnsupported, runtime.GOOS)
}
