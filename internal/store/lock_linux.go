package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DirLock is an exclusive lock on a state directory, held for the life of
// the daemon (flock(2) on DIR/vifsecd.lock, released by the kernel when the
// process dies, even by kill -9).
type DirLock struct {
	f *os.File
}

// LockFile is the name of the lock file inside the state directory.
const LockFile = "vifsecd.lock"

// ErrLocked is wrapped by LockDir's error when another process holds the lock.
var ErrLocked = errors.New("state directory is locked")

// LockDir creates dir (mode 0700) if needed and takes its lock without
// waiting. If another process holds it, the error wraps ErrLocked and names
// that process's pid when it is known.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
					holder = fmt.Sprintf("another vifsecd (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("%w: %s is in use by %s; stop it or give a different --state", ErrLocked, dir, holder)
		}
		return nil, fmt.Errorf("lock state directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{f: f}, nil
}

// Unlock releases the lock. The lock file stays; it is reused next time.
func (l *DirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
