package libvirt

import "encoding/hex"

// DefaultSockets are libvirt's read-only sockets, tried in order: the
// monolithic libvirtd's, then the modular virtqemud's.
var DefaultSockets = []string{"/run/libvirt/libvirt-sock-ro", "/run/libvirt/virtqemud-sock-ro"}

// DefaultURI is the connection vifsec opens: the system QEMU driver.
const DefaultURI = "qemu:///system"

// DomainRef names a domain as libvirt's RPC protocol does.
type DomainRef struct {
	Name string
	UUID [16]byte
	// ID is the running domain's ID, -1 if inactive.
	ID int32
}

// UUIDString returns the UUID as 8-4-4-4-12 lower-case hex digits.
func (r DomainRef) UUIDString() string {
	h := hex.EncodeToString(r.UUID[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// LiveDomain is a running domain and its live XML.
type LiveDomain struct {
	Ref DomainRef
	XML []byte
}
