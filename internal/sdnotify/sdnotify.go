// Package sdnotify tells the service manager about the daemon's state
// (sd_notify(3)): READY=1 once it serves, STOPPING=1 when it stops,
// RELOADING=1 around a reload. A unit with Type=notify waits for READY=1
// before it starts what is ordered after it.
//
// What it must not do: fail the daemon when no service manager listens.
// Without $NOTIFY_SOCKET every call does nothing.
package sdnotify

import (
	"errors"
	"net"
	"os"
)

// Notifier sends state lines to $NOTIFY_SOCKET. The zero value, and a
// Notifier made without $NOTIFY_SOCKET, send nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns the notifier for $NOTIFY_SOCKET and unsets it, so that
// children the daemon starts do not speak for it.
func FromEnv() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	return New(path)
}

// New returns a notifier for the datagram socket path ("@name" is in the
// abstract namespace); "" gives one that sends nothing.
func New(path string) *Notifier {
	if path == "" {
		return &Notifier{}
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Ready says the daemon serves (READY=1) with a status line.
func (n *Notifier) Ready(status string) error { return n.send("READY=1\nSTATUS=" + status) }

// Reloading says a reload began (RELOADING=1); call Ready when it ends.
func (n *Notifier) Reloading() error { return n.send("RELOADING=1") }

// Stopping says the daemon is shutting down (STOPPING=1).
func (n *Notifier) Stopping() error { return n.send("STOPPING=1") }

// Status sets the status line systemctl status shows.
func (n *Notifier) Status(status string) error { return n.send("STATUS=" + status) }

func (n *Notifier) send(state string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return errors.Join(errors.New("sd_notify"), err)
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
