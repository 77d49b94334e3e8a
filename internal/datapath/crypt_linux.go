package datapath

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// waker parks crypto helpers in a blocking read of an eventfd in
// semaphore mode: each wake lets one reader return. A helper in a system
// call holds no CPU of the scheduler's; the kernel wakes its thread, and
// it takes an idle CPU on its way out of the call.
type waker struct {
	fd  int
	one [8]byte
}

func newWaker() (*waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_SEMAPHORE|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	w := &waker{fd: fd}
	binary.NativeEndian.PutUint64(w.one[:], 1)
	return w, nil
}

// wait blocks until a wake is for this caller; b is the caller's
// buffer for the count read (made once: a local one would be allocated
// per call where the race detector makes it escape).
func (w *waker) wait(b *[8]byte) {
	for {
		_, err := unix.Read(w.fd, b[:])
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// wake lets n waiters (present or next) return.
func (w *waker) wake(n int) {
	for range n {
		unix.Write(w.fd, w.one[:])
	}
}

func (w *waker) close() { unix.Close(w.fd) }
