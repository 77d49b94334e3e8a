package store

// KindSeq is an SA's outbound sequence reservation, named like its SA
// (plus one record of the host's reservation epoch, named SeqEpochName).
// Reservations are not desired state: Load leaves them out (they are read
// with SeqStore.LoadSeqs), they change far more often than anything else,
// and in the fleet store writing one is no change of the host's desired
// state. A Commit may carry them, so that an SA and its first reservation
// are stored together, and a delete of the SA deletes its reservation.
const KindSeq Kind = "seq"

// SeqEpochName is the KindSeq record of the store's reservation epoch.
// SA names never start with '~'.
const SeqEpochName = "~epoch"

// SeqStore is implemented by stores that keep sequence reservations
// (every Store vifsecd runs on). The values are opaque, as every record.
type SeqStore interface {
	// LoadSeqs returns every KindSeq record. A record that exists but
	// cannot be read (the fleet store: sealed with a key this host does
	// not have) has a nil Value.
	LoadSeqs() ([]Record, error)
	// RenewSeqs writes KindSeq records in one durable step, each only if
	// no one but this store's user changed or deleted it since this store
	// last read or wrote it (the SA was removed, or its VM moved to
	// another host with its reservation); those are not written and are
	// returned in gone. RenewSeqs creates no record but SeqEpochName's:
	// an SA's first reservation is committed with the SA (Commit).
	RenewSeqs(recs []Record) (gone []string, err error)
}
