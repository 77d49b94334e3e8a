// Package ike is vifsec's IKEv2 protocol engine (RFC 7296): it negotiates
// IKE SAs and Child SAs for the policies the daemon gives it, as initiator
// and responder, and hands the resulting ESP SAs to the data path.
//
// It owns the protocol state machine — IKE_SA_INIT, IKE_INTERMEDIATE
// with the additional key exchanges of RFC 9370 (RFC 9242; ML-KEM among
// them; intermediate.go), IKE_AUTH (with RFC 8784 post-quantum preshared
// keys, mandatory or optional: Policy.PPK),
// CREATE_CHILD_SA (new Child SA, Child SA rekey, IKE SA rekey, optional
// PFS) followed by IKE_FOLLOWUP_KE for their additional key exchanges
// (RFC 9370 §2.2.4, followup.go), INFORMATIONAL (delete, liveness) — message IDs with a window of
// one, retransmission with exponential backoff, duplicate requests
// answered from a cache, rekey collisions (§2.8.1), cookies (§2.6), NAT
// detection and the float to port 4500 (§2.23), IKE fragmentation (RFC
// 7383), proposal selection, traffic selector narrowing (§2.9),
// identities, the PKI checks (chain, CRLs, identity proven by the
// certificate), the timers (lifetimes, rekeying, DPD, half-open and
// retry) and the limits that keep a hostile peer from exhausting the
// responder: half-open IKE SAs per source, per tenant and in all, and
// reassembly memory per IKE SA and in all, each refusal counted
// (limits.go, Engine.Stats). A Child SA the peer refuses, in IKE_AUTH or
// in a CREATE_CHILD_SA for a new one, fails alone: the IKE SA stands (RFC
// 7296 §2.21.2), says why (IKESAInfo.ChildError), and an initiating
// policy retries the Child SA with CREATE_CHILD_SA on it, backing off as
// its IKE SA retries do, never with a new IKE_SA_INIT.
//
// It does not encode messages (sa/ike/wire does), does no cryptography of
// its own (sa/ike/suite does), does not open sockets or handle the
// non-ESP marker (the daemon does, told by the ports of a Packet), and
// never touches the SA database: Config.Install, Switch and Remove do,
// outside the engine's lock. Keys are never logged; the engine zeroes its
// copies when an SA goes (the Go runtime may have copied key schedules
// the engine cannot reach; see sa/ike/suite).
//
// See Engine for the concurrency contract.
package ike
