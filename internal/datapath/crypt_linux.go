package datapath

import (
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"
)

// waker parks crypto helpers in a read of an eventfd in semaphore mode:
// each wake lets one reader return. The eventfd is non-blocking and read
// through the runtime's network poller, so a parked helper holds no CPU
// of the scheduler's (a goroutine in a blocking system call keeps one
// for up to 10 ms), and a wake reaches it through the poller, which an
// idle CPU waits in, rather than through the waker's own CPU (a
// goroutine readied through a channel waits there until the waker
// yields, which a worker does not do).
type waker struct {
	f   *os.File
	one [8]byte
}

// haveWaker says crypto helpers can be parked here.
const haveWaker = true

func newWaker() (*waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_SEMAPHORE|unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	w := &waker{f: os.NewFile(uintptr(fd), "crypto-helpers")}
	binary.NativeEndian.PutUint64(w.one[:], 1)
	return w, nil
}

// wait blocks until a wake is for this caller, or the waker is closed;
// b is the caller's buffer for the count read (made once: a local one
// would be allocated per call where the race detector makes it escape).
func (w *waker) wait(b *[8]byte) { w.f.Read(b[:]) }

// wake lets n waiters (present or next) return.
func (w *waker) wake(n int) {
	for range n {
		w.f.Write(w.one[:])
	}
}

func (w *waker) close() { w.f.Close() }
