package ike

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"
)

// Cookies (RFC 7296 §2.6): above the half-open threshold a responder
// answers IKE_SA_INIT requests without a valid cookie with a COOKIE notify
// only, keeping no state. A cookie is
//
//	<secret version (4 bytes)> | HMAC-SHA-256(secret, Ni | IPi | SPIi)[:16]
//
// The secret is renewed every cookieLifetime; cookies of the previous
// secret stay valid, so an initiator that got one just before a change is
// not refused.

const cookieLifetime = 2 * time.Minute

type cookieJar struct {
	cur, prev   [32]byte
	version     uint32
	rotated     time.Time
	initialised bool
}

func (j *cookieJar) rotate(e *Engine, now time.Time) {
	if j.initialised && now.Sub(j.rotated) < cookieLifetime {
		return
	}
	j.prev = j.cur
	copy(j.cur[:], e.random(32))
	j.version++
	j.rotated = now
	j.initialised = true
}

func cookieMAC(secret *[32]byte, version uint32, ni []byte, ip netip.Addr, spii uint64) []byte {
	m := hmac.New(sha256.New, secret[:])
	m.Write(ni)
	a := ip.Unmap().AsSlice()
	m.Write(a)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], spii)
	m.Write(b[:])
	out := make([]byte, 4, 20)
	binary.BigEndian.PutUint32(out, version)
	return append(out, m.Sum(nil)[:16]...)
}

// make returns the cookie for an initiator.
func (j *cookieJar) make(e *Engine, ni []byte, ip netip.Addr, spii uint64) []byte {
	j.rotate(e, e.now())
	return cookieMAC(&j.cur, j.version, ni, ip, spii)
}

// valid checks a cookie the initiator returned.
func (j *cookieJar) valid(e *Engine, c, ni []byte, ip netip.Addr, spii uint64) bool {
	j.rotate(e, e.now())
	if len(c) != 20 {
		return false
	}
	v := binary.BigEndian.Uint32(c)
	switch v {
	case j.version:
		return hmac.Equal(c, cookieMAC(&j.cur, v, ni, ip, spii))
	case j.version - 1:
		// Only a secret that was once current (never the zero array).
		return j.version >= 2 && hmac.Equal(c, cookieMAC(&j.prev, v, ni, ip, spii))
	}
	return false
}
