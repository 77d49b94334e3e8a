//go:build !linux

package store

import (
	"errors"
	"fmt"
)

// DirLock is an exclusive lock on a state directory (Linux only).
type DirLock struct{}

// LockFile is the name of the lock file inside the state directory.
const LockFile = "vifsecd.lock"

// ErrLocked is wrapped by LockDir's error when another process holds the lock.
var ErrLocked = errors.New("state directory is locked")

// LockDir is unsupported on this platform.
func LockDir(dir string) (*DirLock, error) {
	return nil, fmt.Errorf("lock state directory %s: unsupported on this platform", dir)
}

// Unlock does nothing.
func (l *DirLock) Unlock() error { return nil }
