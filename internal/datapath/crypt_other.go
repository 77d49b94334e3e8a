//go:build !linux

package datapath

import "errors"

// waker parks crypto helpers; only Linux has one (crypt_linux.go):
// elsewhere the engine has no helpers and workers do their crypto
// inline.
type waker struct{}

// haveWaker says crypto helpers cannot be parked here.
const haveWaker = false

func newWaker() (*waker, error) {
	return nil, errors.New("crypto helpers: unsupported on this platform")
}
func (*waker) wait(*[8]byte) {}
func (*waker) wake(int)      {}
func (*waker) close()        {}
