// Package store keeps vifsecd's state durable: tenants, VMs, the uplink,
// SAs (with their keys), SPs, the global switch, and IKE policies (with
// their pre-shared keys), certificates (with private keys) and CRLs.
//
// It owns the Store interface, which the daemon commits every accepted
// change through, and its embedded implementation on bbolt (Open). The
// fleet backend on etcd (store/etcd) implements the same interface, so it
// is kept small: one atomic Commit of puts and deletes, and one Load of
// everything; a store whose records change under the daemon also
// implements Watcher (watch.go).
//
// Every Store also keeps outbound sequence reservations (SeqStore,
// seq.go): records of kind KindSeq beside the desired state, which Load
// leaves out, written together with an SA by Commit and renewed on their
// own by RenewSeqs, which never re-creates a record someone removed or
// moved away.
//
// It must not interpret records: values are opaque bytes that the daemon
// encodes and decodes, so validation lives in one place (the daemon), and
// it must not log values (an SA record holds key material).
package store
