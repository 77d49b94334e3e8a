package fleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vifsec/vifsec/sa"
)

// seqBook remembers, on the host's disk, how far each manual SA has sent,
// so that after a restart of vifsecd an SA object built again from the
// store continues its outbound sequence numbers above what it sent before
// (the peer's anti-replay window would otherwise drop the restarted
// numbers as replays). It is written once a second and at a clean stop.
//
// A checkpoint can only be as fresh as its last write: after a crash, the
// SA continues at the checkpoint plus a margin of twice the packets it
// sent in the last interval, plus 65536.
type seqBook struct {
	path string

	mu   sync.Mutex
	prev map[string]seqEntry // read at start
	last map[string]seqEntry
	at   time.Time
}

type seqEntry struct {
	SPI     uint32 `json:"spi"`
	Created int64  `json:"created"` // unix ns: the same SA, not a new one of that name
	Seq     uint64 `json:"seq"`     // last sequence number reserved
	Rate    uint64 `json:"rate"`    // numbers reserved in the last interval
}

// seqMargin is added to a checkpoint on top of twice the last rate.
const seqMargin = 1 << 16

func openSeqBook(dir string) *seqBook {
	b := &seqBook{path: filepath.Join(dir, "seq.json"), prev: map[string]seqEntry{}, last: map[string]seqEntry{}}
	if data, err := os.ReadFile(b.path); err == nil {
		json.Unmarshal(data, &b.prev)
	}
	return b
}

// next is Converger.NextSeq: where a rebuilt SA continues.
func (b *seqBook) next(cfg *sa.Config) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.last[cfg.Name]
	if !ok {
		e, ok = b.prev[cfg.Name]
	}
	if !ok || e.SPI != cfg.SPI || e.Created != cfg.Created.UnixNano() {
		return 0
	}
	return e.Seq + 2*e.Rate + seqMargin
}

// checkpoint records every SA's sequence number and writes the book.
// Reading the number reserves one (sa.SA.NextSeq): a gap of one number per
// checkpoint, which receivers accept.
func (b *seqBook) checkpoint(db *sa.DB) error {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := map[string]seqEntry{}
	for _, s := range db.List() {
		seq, _ := s.NextSeq()
		c := s.Config()
		e := seqEntry{SPI: c.SPI, Created: c.Created.UnixNano(), Seq: seq}
		if old, ok := b.last[c.Name]; ok && old.SPI == e.SPI && old.Created == e.Created && seq > old.Seq {
			e.Rate = seq - old.Seq
			if el := now.Sub(b.at); el > time.Second {
				e.Rate = uint64(float64(e.Rate) / el.Seconds())
			}
		}
		cur[c.Name] = e
	}
	b.last, b.at = cur, now
	data, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	tmp := b.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("sequence checkpoint: %w", err)
	}
	if err := os.Rename(tmp, b.path); err != nil {
		return fmt.Errorf("sequence checkpoint: %w", err)
	}
	return nil
}
