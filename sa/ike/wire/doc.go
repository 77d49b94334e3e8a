// Package wire is the IKEv2 message codec: the header, the generic payload
// header with its critical bit, and every payload of RFC 7296 §3 (SA with
// proposals, transforms and the Key Length attribute; KE; IDi/IDr; CERT;
// CERTREQ; AUTH; Nonce; Notify; Delete; Vendor ID; TSi/TSr with IPv4 and
// IPv6 ranges; CP carried opaque; SK with an opaque body), the SKF fragment
// payload of RFC 7383, and reassembly of decrypted fragments. The
// IKE_INTERMEDIATE exchange (RFC 9242) and the ADDKE transform types of
// RFC 9370 need nothing of their own here beyond their numbers.
//
// It owns bytes and their consistency only. Every decoder checks a length
// before it reads, rejects lengths, counts and last-substructure markers that
// disagree, never panics on input, and allocates in proportion to the input
// (one copy of it plus the decoded structs). Errors are sentinels (ErrTruncated,
// ErrBadVersion, ErrUnsupportedCritical, ErrBadLength, ErrBadValue,
// ErrNotLast, ErrTooManyPayloads) wrapped with the payload at fault.
// Encoding is canonical: reserved fields zero, known payloads non-critical,
// Key Length the only transform attribute.
//
// It must not do cryptography (SK/SKF bodies are opaque: sealing, opening
// and padding are package suite's) nor keep protocol state or judge
// semantics (which payloads an exchange needs, nonce sizes, proposal
// numbering, SPI sizes per protocol are the engine's). The one stateful type,
// Reassembler, holds decrypted fragments for one IKE SA on behalf of the
// engine, which authenticates each fragment before adding it.
package wire
