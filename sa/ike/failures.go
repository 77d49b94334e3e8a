package ike

import (
	"fmt"

	"github.com/vifsec/vifsec/sa/ike/wire"
)

// Failure names why an IKE SA or Child SA negotiation failed, on either
// side: the peer refused ours, or we refused the peer's. It labels the
// counters of Stats.Failures. The zero value is invalid.
type Failure uint8

const (
	FailureInvalid        Failure = iota
	FailureNoProposal             // no common proposal (NO_PROPOSAL_CHOSEN, a KE group or mode not offered, a bad choice)
	FailureAuth                   // authentication failed (AUTHENTICATION_FAILED, no policy for the identity, a bad AUTH)
	FailureTimeout                // no answer after every retransmission (peer unreachable)
	FailureTSUnacceptable         // traffic selectors outside the policy's (TS_UNACCEPTABLE)
	FailureOther                  // another error notify or a malformed answer
	NumFailures
)

// String returns the failure's name as in metrics labels.
func (f Failure) String() string {
	switch f {
	case FailureNoProposal:
		return "no_proposal_chosen"
	case FailureAuth:
		return "authentication_failed"
	case FailureTimeout:
		return "timeout"
	case FailureTSUnacceptable:
		return "ts_unacceptable"
	case FailureOther:
		return "other"
	}
	return fmt.Sprintf("Failure(%d)", uint8(f))
}

// failureOf classifies an error notify.
func failureOf(t wire.NotifyType) Failure {
	switch t {
	case wire.NotifyNoProposalChosen, wire.NotifyInvalidKEPayload:
		return FailureNoProposal
	case wire.NotifyAuthenticationFailed:
		return FailureAuth
	case wire.NotifyTSUnacceptable:
		return FailureTSUnacceptable
	}
	return FailureOther
}

// fail counts a failed negotiation. Called with e.mu held.
func (e *Engine) fail(f Failure) { e.stats.Failures[f]++ }
