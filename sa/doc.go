// Package sa owns security associations: their configuration and
// validation, the algorithm registry, the keyed crypto state, sequence
// numbers, anti-replay, lifetimes, counters, and the database that finds an
// SA by (vlan, mac, SPI).
//
// # Keying
//
// An SA belongs to one VM interface, identified by its Scope (VLAN, MAC).
// The database key is Key{Scope, SPI}: SPI numbering is per VM (ARCHITECTURE.md),
// so two tenants may both use SPI 0x1000 and still get two different SAs.
// Inbound ESP is looked up by that key; outbound traffic reaches its SA by
// reference from a policy, never by lookup.
//
// # Concurrency: why sharded copy-on-write tables
//
// The data path looks an SA up for every inbound packet, from several
// goroutines. DB keeps 64 shards, each an immutable open-addressing table
// (keys inline beside the SA pointers, load factor ≤ 1/2) behind an
// atomic.Pointer. A reader hashes the key, loads one pointer and probes one
// contiguous array — usually a single cache line — with no lock, no
// allocation and no write to shared memory (so no cache line bouncing
// between cores). A Go map would add its directory and group indirections
// to every lookup, which at a million SAs are cache misses. A writer takes the DB's mutex, copies only the
// shard it changes, and publishes it with one atomic store (RCU-style:
// readers holding the old map finish with it and the GC frees it). Writes are
// control-plane events (CLI, IKE rekeys) and cost O(n/64); Apply batches many
// changes into one copy per shard for bulk loads. A single global
// atomic.Pointer map would make each write O(n); sync.Map takes its mutex on
// misses after writes; a lock per lookup would serialise all cores.
//
// Per-SA mutable state follows the same rule where it can: the outbound
// sequence number and the counters are atomics; the anti-replay window is a
// per-SA mutex held only for the few nanoseconds of a check or an Accept
// (packets of one SA arrive on one queue in practice; the data path's
// crypto helpers may open a run of them at once, each packet checked
// before and accepted after its decryption); CBC+HMAC suites
// keep their chaining and HMAC state behind a per-SA mutex, while AEAD
// suites (AES-GCM, ChaCha20-Poly1305) are safe for concurrent use as they are.
//
// # Outbound sequence numbers
//
// With AES-GCM and ChaCha20-Poly1305 the sequence number is the nonce
// (RFC 4106 §3): under one key, no sequence number may ever be sent twice,
// not across a restart, a crash or a move. The SA enforces a limit that its
// owner has made durable first (a reservation): NextSeq hands out a number
// only if it is at most SeqLimit, a check that costs one atomic load and
// compare against a renewal mark on every packet. Past the mark it asks
// for a renewal (DB.RenewalWanted, a non-blocking wake-up); past the limit
// it drops the packet (drop.SeqReservation) rather than exceed it. Freeze
// stops an SA and returns the exact last number (a clean stop), Refuse
// stops it for good when its history cannot be proven (drop.SeqRefused).
// An SA built by New has no limit (SeqUnlimited); the daemon sets one on
// every SA it stores (internal/daemon, seqres.go). ReserveSeq takes a
// block of consecutive numbers at once under the same limits (NextSeq is
// a block of one), for a sender that seals a run of packets in parallel
// and sends them in number order.
//
// # What this package must not do
//
// It does not parse IP packets (sa/esp does), does not know about policies
// or tenants (tenant does), and never blocks the data path on the control
// plane: lifetime events are delivered on a buffered channel and dropped,
// counted, if nobody reads them.
package sa
