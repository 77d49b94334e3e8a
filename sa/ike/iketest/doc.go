// Package iketest holds test doubles for sa/ike: Attacker, a hostile IKEv2
// initiator that completes IKE_SA_INIT (answering cookies, so it is not
// spoofing) and then never authenticates, or sends fragments of an
// IKE_AUTH request it never finishes. Tests of the responder's limits use
// it in memory (sa/ike) and over UDP (cmd/vifsecd).
//
// It must not be linked into a binary: it exists for tests.
package iketest
