// Package suite owns the cryptography of IKEv2: transform IDs and the
// strongSwan proposal syntax, Diffie-Hellman groups, PRFs and prf+, the key
// derivations of RFC 7296 §2.13-2.18, protection of the SK (and SKF)
// payload (§3.14, RFC 5282, RFC 7634) and the AUTH payload computations
// (§2.15, RFC 7427).
//
// Everything here is a pure function of its inputs or a value that holds
// keys and nothing else: no goroutines, no timers, no I/O besides reading
// the io.Reader of randomness a caller passes. It does not parse IKE
// messages (sa/ike/wire does), does not choose between proposals or keep
// SA state (sa/ike does), and does not install ESP SAs (sa does).
//
// # Algorithms
//
// IKE SA: ENCR AES-CBC-128/256 with HMAC integrity, AES-GCM-16-128/256
// and ChaCha20-Poly1305; PRF HMAC-SHA1/256/384/512; INTEG HMAC-SHA1-96,
// HMAC-SHA2-256-128, -384-192, -512-256; DH groups 14 (MODP-2048), 19
// (ECP-256), 20 (ECP-384) and 31 (Curve25519); as additional key
// exchanges (RFC 9370, ADDKE1..7, strongSwan's ke1_… keywords) ML-KEM-768
// and ML-KEM-1024 (crypto/mlkem, transform IDs 36 and 37) and the DH
// groups, with the key update of RFC 9370 §2.2.2 (UpdateIKE) and the
// IntAuth chain of RFC 9242 §3.3.2 (IntAuth, AppendIntAuth).
//
// Child SA (ESP): every algorithm of the ESP core (sa.EncAlgs,
// sa.IntegAlgs), ESN, and an optional PFS group from the same DH groups.
//
// The derivations and AUTH computations are checked against values
// strongSwan's charon logged (testdata/): 5.9.8 for IKE_SA_INIT and
// IKE_AUTH, 6.1 for an additional ML-KEM-768 exchange in IKE_INTERMEDIATE
// with IntAuth, with and without a PPK.
//
// # Keys
//
// AEAD keys are laid out as the ESP core wants them: key followed by the
// 4-byte salt (RFC 5282 §7.1, RFC 4106 §8.1, RFC 7634 §4). Zero overwrites
// key slices once a caller is done with them; the expanded key schedules
// inside crypto/aes, crypto/hmac and chacha20poly1305 cannot be reached
// from Go and go with the garbage collector.
//
// # Side channels
//
// ECP and Curve25519 use crypto/ecdh, which is constant time. MODP-2048
// uses math/big, which is not: its exponentiation leaks timing about the
// (ephemeral, 256-bit) private exponent. Prefer the elliptic groups.
package suite
