// Package etcd is vifsecd's fleet store: the desired state of many hosts
// in one etcd v3 cluster (go.etcd.io/etcd/client/v3), under a key prefix.
//
// It owns the key layout (fleet-wide records, each host's records, guard,
// member and status keys; see etcd.go), the sealing of every record value
// with a key-encryption key (kek.go), the per-host View that implements
// store.Store (one etcd transaction per commit, optimistic concurrency on
// guard keys) and store.Watcher (a revision-based watch that resumes after
// a disconnect and reads everything again after a compaction), the
// cluster's health as its client sees it, and the hosts' lease-bound
// status keys (status.go), and the hosts' outbound sequence reservations
// outside the desired state, renewed only while unchanged by others and
// carried by moves (seq.go).
//
// It must not interpret records beyond their kind (the daemon decodes and
// checks them), log values, or store a record value unsealed.
package etcd
