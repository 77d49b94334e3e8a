package lab

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNS runs fn on a thread inside namespace ns; sockets fn creates stay in
// ns after it returns, so a test can listen in one VM and dial from another.
func InNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// This goroutine's thread is never returned to the scheduler's
		// pool after switching: it exits with the goroutine.
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("netns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
