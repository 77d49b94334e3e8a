// Package ikectl runs vifsecd's IKE engine (sa/ike) for the daemon: it
// turns the operator's IKE policies (internal/daemon) into engine
// policies whenever the daemon's state changes, installs the Child SAs the
// engine negotiates as SAs and SPs of the daemon, hands it SA lifetime
// events, and reports its IKE SAs for `vifsec show-ikesa`.
//
// It owns no packet I/O: the caller gives Config.Send and feeds received
// IKE datagrams to Input (internal/ikeio carries them: the data path's
// IKE punt for policies with --vm, UDP sockets on the underlay address for
// the others). It must not reach into the data path or the store.
//
// Concurrency: the engine's AllocSPI and FreeSPI callbacks take the
// Daemon's lock while the engine holds its own, so nothing here calls the
// engine with the Daemon's lock held (the Daemon reads the engine's
// report before it locks).
package ikectl
