package store

import (
	"errors"
	"fmt"
)

// Kind is the type of a stored object. Each kind is its own namespace of
// names: a tenant and a VM may share a name.
type Kind string

// The kinds vifsecd stores.
const (
	KindTenant Kind = "tenant"
	KindVM     Kind = "vm"
	KindUplink Kind = "uplink"
	KindSA     Kind = "sa"
	KindSP     Kind = "sp"
	KindConfig Kind = "config"
	// KindFDB is a static VXLAN forwarding entry (`vifsec overlay fdb
	// add`): a tenant's MAC behind a remote VTEP, named "TENANT/MAC".
	KindFDB Kind = "fdb"
	// KindCertificate is a tenant's installed certificate (`vifsec
	// certificate install`): a server certificate chain with its private
	// key, or CA certificates. Named "TENANT/CERT-NAME".
	KindCertificate Kind = "certificate"
	// KindCRL is a certificate revocation list of one of a tenant's CAs
	// (`vifsec crl add`), named "TENANT/ISSUER-HASH".
	KindCRL Kind = "crl"
	// KindPolicy is an IKE policy (`vifsec policy create`), its
	// pre-shared key included, named "TENANT/NAME".
	KindPolicy Kind = "policy"
)

// Kinds lists every kind, in the order Load returns them: an object only
// refers to objects of earlier kinds (a VM to its tenant, an SA to its
// VM, an SP to its VM and SA, an FDB entry to its tenant, a certificate to
// its tenant, a CRL to a CA certificate, an IKE policy to its tenant, VM
// and certificate).
func Kinds() []Kind {
	return []Kind{KindConfig, KindUplink, KindTenant, KindVM, KindSA, KindSP, KindFDB, KindCertificate, KindCRL, KindPolicy}
}

func (k Kind) valid() bool {
	if k == KindSeq {
		return true
	}
	for _, x := range Kinds() {
		if k == x {
			return true
		}
	}
	return false
}

// Op is one change in a Commit: Put stores Value under (Kind, Name); a nil
// Value deletes (Kind, Name), which is not an error if it is absent.
type Op struct {
	Kind  Kind
	Name  string
	Value []byte
}

// Put returns the Op that stores value under (kind, name).
func Put(kind Kind, name string, value []byte) Op {
	if value == nil {
		value = []byte{}
	}
	return Op{Kind: kind, Name: name, Value: value}
}

// Delete returns the Op that deletes (kind, name).
func Delete(kind Kind, name string) Op { return Op{Kind: kind, Name: name} }

// Record is one stored object.
type Record struct {
	Kind  Kind
	Name  string
	Value []byte
}

// Store is durable, transactional storage of named objects.
//
// Commit applies ops as one transaction: when it returns nil every op is
// durable (on disk, or acknowledged by a quorum), and a crash at any moment
// leaves either all of them or none. When it returns an error, nothing was
// changed. Load returns every record, grouped by kind in the order of
// Kinds, sorted by name within a kind.
//
// Implementations are safe for concurrent use; commits are serialised.
//
// Every Store also keeps sequence reservations (SeqStore, seq.go).
type Store interface {
	Commit(ops []Op) error
	Load() ([]Record, error)
	Close() error
	SeqStore
}

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("store: closed")

// CheckOps returns an error if an op has an unknown kind or an empty name.
// Implementations call it before changing anything.
func CheckOps(ops []Op) error {
	for _, op := range ops {
		if !op.Kind.valid() {
			return fmt.Errorf("store: unknown kind %q", op.Kind)
		}
		if op.Name == "" {
			return fmt.Errorf("store: empty name for kind %s", op.Kind)
		}
	}
	return nil
}
