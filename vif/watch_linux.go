package vif

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// WatchLinks reports link changes in network namespace nsName ("" = the
// daemon's) on events until ctx ends. It returns once subscribed.
func WatchLinks(ctx context.Context, nsName string, events chan<- LinkEvent) error {
	opts := netlink.LinkSubscribeOptions{ListExisting: false}
	if nsName != "" {
		h, err := netns.GetFromName(nsName)
		if err != nil {
			return fmt.Errorf("--netns %s: %w", nsName, err)
		}
		defer h.Close() // the subscription keeps its own socket in the namespace
		opts.Namespace = &h
	}
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	errc := make(chan error, 1)
	opts.ErrorCallback = func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
		return fmt.Errorf("link watch in netns %q: %w", nsName, err)
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				a := u.Attrs()
				ev := LinkEvent{Netns: nsName, Name: a.Name, Index: a.Index,
					Gone: u.Header.Type == unix.RTM_DELLINK, Up: a.OperState == netlink.OperUp || a.Flags&1 != 0}
				select {
				case events <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return nil
}
