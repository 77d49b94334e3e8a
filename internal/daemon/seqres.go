package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/sa"
)

// Outbound sequence reservations: under one key, no (SPI, sequence
// number) is ever sent twice (with AES-GCM and ChaCha20-Poly1305 the
// number is the nonce), across a restart, a crash (kill -9), a VM's move
// to another host, or a state directory restored from a copy. One
// mechanism serves the embedded store and the fleet store: a record per
// stored SA (store.KindSeq, beside the SA's record, never in Load):
//
//   - sa add commits the SA and its first reservation together. The
//     data path sends a number only if it is at most the SA's durable
//     limit (sa.SA.SeqLimit, one atomic compare per packet). Past a
//     renewal mark it wakes runSeqs, which writes "up to N" ahead
//     (store.SeqStore.RenewSeqs, batched) and only then raises the
//     limit. If the limit is reached first, packets are dropped and
//     counted (seq-reservation), never sent above it. A reservation grows
//     (seqChunkMin to seqChunkMax numbers) when renewals come faster than
//     once a second, so a burst does not outrun the disk.
//   - A clean stop (Run returning) freezes every SA and writes the exact
//     last number (Clean). After a crash the record's limit bounds what
//     was sent: the SA continues above it (a gap of at most one
//     reservation, which receivers accept).
//   - A restored or rolled-back store cannot be told from a crash by its
//     own content, so the store's records are bound to an epoch that each
//     start raises, and the epoch is also kept outside the store, in an
//     anchor file (Config.SeqAnchor, beside the API socket in /run: it
//     survives the daemon, not a reboot). At start: anchor and store
//     agree → every record is trusted; they disagree (the store is older
//     than this host's last start: restored, copied, rolled back) → every
//     SA refuses; no anchor (first start since boot) → only records of a
//     clean stop are trusted, the others refuse (a crash before a reboot
//     and a restored copy look the same). Restoring a copy taken at a
//     clean stop across a reboot is the one case left undetected; re-key
//     after restoring a state directory.
//   - An SA whose history cannot be proven (no record although its SA
//     record is stored — e.g. state written by an older vifsec —, an
//     unreadable record, a record of another SA of that name, an
//     untrusted record) refuses to send until it is replaced by an SA with
//     a new key (fail closed): a log line, state "refused" with the reason
//     in `vifsec sa list` and the API, the gauge vifsec_sa_seq_refused and
//     the drop counter seq-refused. The refusal is written into the
//     record, so a later start does not trust it again.
//   - A move (internal/fleet) carries the SA's record to the new host in
//     the move's transaction, on condition that the source did not renew
//     it since it was read; the source's later renewals then fail, so it
//     stops at that limit and the new host starts above it.
//   - Two stored SAs with the same encryption key (or, without encryption,
//     integrity key) are warned about loudly, not refused: sa add returns
//     a warning and logs an error, and a start or converge that finds a
//     duplicate logs an error. One key shared by SAs repeats nonces
//     whatever the sequence numbers do (each SA counts from 1), so this
//     is an operator error; it is not refused because manual SAs have no
//     direction of their own and existing configurations (and tests) use
//     one key for an inbound and an outbound SA.
//
// SAs IKE installs are not stored and have fresh keys at every
// negotiation: they need no reservation (after a restart IKE negotiates
// new ones).

const (
	seqChunkMin = 1 << 18
	seqChunkMax = 1 << 26
)

// seqRecord is a reservation as stored.
type seqRecord struct {
	// SPI, Created and Key identify the SA: not another SA of that name.
	SPI     uint32 `json:"spi"`
	Created int64  `json:"created"`
	Key     string `json:"key"` // keyFingerprint
	// Limit: no number above it was sent. With Clean, Sent is exactly the
	// last number sent (a clean stop).
	Limit uint64 `json:"limit"`
	Sent  uint64 `json:"sent,omitempty"`
	Clean bool   `json:"clean,omitempty"`
	// Refused: the SA refuses to send, for this reason, until replaced.
	Refused string `json:"refused,omitempty"`
}

// next is the first number the SA may send.
func (r *seqRecord) next() uint64 {
	if r.Clean {
		return r.Sent + 1
	}
	return r.Limit + 1
}

type seqEpochRecord struct {
	Epoch uint64 `json:"epoch"`
}

// seqAnchor is the anchor file's content: the epoch this host's store
// was last raised to, and whether that write was confirmed.
type seqAnchor struct {
	Epoch     uint64 `json:"epoch"`
	Committed bool   `json:"committed"`
}

// seqEntry is a stored SA whose reservation this daemon keeps.
type seqEntry struct {
	s       *sa.SA
	rec     seqRecord // identity and last written state
	chunk   uint64
	renewed time.Time
	frozen  bool // its record left (moved or removed): never renewed again
}

// seqBook holds the reservations of the stored SAs. Lock order: d.mu,
// then seqBook.mu (held across the store write of a renewal, so that a
// removal never races a renewal of the same record).
type seqBook struct {
	mu      sync.Mutex
	on      bool // this daemon owns the reservations (not a temporary daemon)
	anchor  string
	entries map[string]*seqEntry
	byKey   map[string]string // keyFingerprint → SA name
	failing bool              // the last renewal failed (logged once)
}

// keyFingerprint identifies an SA's key material without revealing it:
// the encryption key (with its salt), or the integrity key of an SA
// without encryption.
func keyFingerprint(c *sa.Config) string {
	k := c.EncKey
	label := "enc"
	if len(k) == 0 {
		k, label = c.IntegKey, "integ"
	}
	h := sha256.New()
	h.Write([]byte("vifsec-sa-key-v1\x00" + label + "\x00"))
	h.Write(k)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func saFingerprint(s *sa.SA) string {
	c := s.ConfigWithKeys()
	defer clear(c.EncKey)
	defer clear(c.IntegKey)
	return keyFingerprint(&c)
}

func newSeqRecord(c *sa.Config, limit uint64) seqRecord {
	return seqRecord{SPI: c.SPI, Created: c.Created.UnixNano(), Key: keyFingerprint(c), Limit: limit}
}

func (r *seqRecord) sameSA(o *seqRecord) bool {
	return r.SPI == o.SPI && r.Created == o.Created && r.Key == o.Key
}

// seqOp is the op storing rec for the SA named name.
func seqOp(name string, rec seqRecord) store.Op {
	return store.Put(store.KindSeq, name, mustJSON(rec))
}

// dupKeyLocked names the tracked SA other than name with key fingerprint
// fp, or "". The caller holds d.seqs.mu.
func (b *seqBook) dupKeyLocked(name, fp string) string {
	if o, ok := b.byKey[fp]; ok && o != name {
		return o
	}
	return ""
}

func (b *seqBook) trackLocked(name string, e *seqEntry) {
	if old := b.entries[name]; old != nil && b.byKey[old.rec.Key] == name {
		delete(b.byKey, old.rec.Key)
	}
	b.entries[name] = e
	if _, taken := b.byKey[e.rec.Key]; !taken {
		b.byKey[e.rec.Key] = name
	}
}

// untrackLocked forgets the SA named name if it is s (any, if s is nil).
func (b *seqBook) untrackLocked(name string, s *sa.SA) {
	e := b.entries[name]
	if e == nil || (s != nil && e.s != s) {
		return
	}
	delete(b.entries, name)
	if b.byKey[e.rec.Key] == name {
		delete(b.byKey, e.rec.Key)
		for n, o := range b.entries { // another SA with that key, refused
			if o.rec.Key == e.rec.Key {
				b.byKey[e.rec.Key] = n
				break
			}
		}
	}
}

// refuseLocked makes s refuse to send and says so.
func (d *Daemon) refuseLocked(s *sa.SA, why string) {
	s.Refuse(why)
	d.log.Error("SA refuses to send until it is replaced by one with a new key (its sequence numbers under this key cannot be proven unused)",
		"sa", s.Name(), "spi", fmt.Sprintf("0x%x", s.SPI()), "why", why)
}

// parseSeqs decodes the records LoadSeqs returned.
func parseSeqs(recs []store.Record) (byName map[string]store.Record, epoch uint64, epochOK bool) {
	byName = map[string]store.Record{}
	for _, r := range recs {
		if r.Name == store.SeqEpochName {
			var e seqEpochRecord
			if r.Value != nil && json.Unmarshal(r.Value, &e) == nil {
				epoch, epochOK = e.Epoch, true
			}
			continue
		}
		byName[r.Name] = r
	}
	return byName, epoch, epochOK
}

// judge decides where s continues from its stored record r (ok false:
// none); why is "" when it may send. trusted says whether a record that
// is not Clean may be believed.
func judge(s *sa.SA, fp string, r store.Record, ok, trusted bool, untrusted string) (rec seqRecord, why string) {
	c := s.Config()
	want := seqRecord{SPI: c.SPI, Created: c.Created.UnixNano(), Key: fp}
	switch {
	case !ok:
		return want, "no sequence reservation is stored for it (state written by an older vifsec, or records lost)"
	case r.Value == nil:
		return want, "its sequence reservation cannot be read (sealed with a key-encryption key this host does not have?)"
	}
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		return want, fmt.Sprintf("its sequence reservation is corrupt: %v", err)
	}
	switch {
	case !rec.sameSA(&want):
		return rec, "its sequence reservation belongs to another SA of that name"
	case rec.Refused != "":
		return rec, rec.Refused
	case !rec.Clean && !trusted:
		return rec, untrusted
	case rec.Clean && rec.Sent > rec.Limit:
		return rec, "its sequence reservation is inconsistent (sent above its limit)"
	}
	return rec, ""
}

// startSeqs takes charge of the reservations of every stored SA, before
// the data path runs: it decides from the records and the anchor where
// each SA continues (or that it refuses), raises the store's epoch, and
// reserves ahead for every SA that may send, durably, before returning.
// The caller holds no lock; nothing sends yet.
func (d *Daemon) startSeqs(anchor string) error {
	b := &d.seqs
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on = true
	b.anchor = anchor
	recs, err := d.st.LoadSeqs()
	if err != nil {
		return fmt.Errorf("restore sequence reservations: %w", err)
	}
	byName, stored, _ := parseSeqs(recs)
	an, haveAnchor, aerr := readAnchor(anchor)
	if aerr != nil {
		d.log.Warn("sequence anchor unreadable: treated as absent (only cleanly stopped SAs continue)", "file", anchor, "err", aerr)
	}
	trusted := false
	untrusted := ""
	switch {
	case !haveAnchor:
		untrusted = "vifsecd did not stop cleanly and no record of this host's last start survives (a reboot since, or a state directory from elsewhere): the numbers it sent cannot be proven"
	case an.Epoch == stored, !an.Committed && an.Epoch == stored+1:
		trusted = true
	default:
		trusted = false
		untrusted = fmt.Sprintf("the stored reservations are of epoch %d, but this host last started at epoch %d: the state was restored from a copy or rolled back", stored, an.Epoch)
	}
	if haveAnchor && !trusted {
		// Even a clean stop's record is old in a restored store.
		for name, r := range byName {
			var rec seqRecord
			if r.Value != nil && json.Unmarshal(r.Value, &rec) == nil && rec.Clean && rec.Refused == "" {
				rec.Clean = false
				r.Value = mustJSON(rec)
				byName[name] = r
			}
		}
	}
	epoch := max(stored, an.Epoch) + 1

	var ops []store.Record
	type start struct {
		e          *seqEntry
		next, want uint64
	}
	var starts []start
	list := d.db.List() // by name: the first of two SAs with one key keeps it
	now := time.Now()
	for _, s := range list {
		if !storedSA(s.Name()) {
			continue
		}
		fp := saFingerprint(s)
		r, ok := byName[s.Name()]
		rec, why := judge(s, fp, r, ok, trusted, untrusted)
		d.warnDupKeyLocked(s.Name(), fp)
		e := &seqEntry{s: s, rec: rec, chunk: seqChunkMin, renewed: now}
		b.trackLocked(s.Name(), e)
		if why != "" {
			d.refuseLocked(s, why)
			if ok && r.Value != nil && rec.Refused == "" {
				rec.Refused = why
				e.rec = rec
				ops = append(ops, store.Record{Kind: store.KindSeq, Name: s.Name(), Value: mustJSON(rec)})
			}
			continue
		}
		next := rec.next()
		want := next - 1 + e.chunk
		nr := rec
		nr.Limit, nr.Sent, nr.Clean = want, 0, false
		e.rec = nr
		ops = append(ops, store.Record{Kind: store.KindSeq, Name: s.Name(), Value: mustJSON(nr)})
		starts = append(starts, start{e, next, want})
		s.SetNextSeq(next)
		s.SetSeqLimit(next-1, next-1)
	}
	ops = append(ops, store.Record{Kind: store.KindSeq, Name: store.SeqEpochName, Value: mustJSON(seqEpochRecord{Epoch: epoch})})
	if err := writeAnchor(anchor, seqAnchor{Epoch: epoch}); err != nil {
		return fmt.Errorf("sequence anchor: %w", err)
	}
	gone, err := d.st.RenewSeqs(ops)
	if err != nil {
		return fmt.Errorf("reserve sequence numbers: %w", err)
	}
	if err := writeAnchor(anchor, seqAnchor{Epoch: epoch, Committed: true}); err != nil {
		return fmt.Errorf("sequence anchor: %w", err)
	}
	for _, st := range starts {
		if slices.Contains(gone, st.e.s.Name()) {
			d.refuseLocked(st.e.s, "its sequence reservation vanished while vifsecd started")
			continue
		}
		st.e.s.SetSeqLimit(st.want, st.want-st.e.chunk/2)
	}
	d.log.Debug("sequence reservations restored", "epoch", epoch, "anchor", anchor, "trusted", trusted, "sas", len(b.entries))
	return nil
}

// readAnchor reads the anchor file; ok is false if there is none.
func readAnchor(path string) (a seqAnchor, ok bool, err error) {
	if path == "" {
		return a, false, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return seqAnchor{}, false, err
	}
	return a, true, nil
}

// writeAnchor replaces the anchor file durably (write, fsync, rename,
// fsync of the directory).
func writeAnchor(path string, a seqAnchor) error {
	if path == "" {
		return nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(mustJSON(a))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if df, err := os.Open(dir); err == nil {
		df.Sync()
		df.Close()
	}
	return nil
}

// warnDupKeyLocked returns (and logs as an error) a warning if another
// stored SA has the key with fingerprint fp; "" if none. The caller holds
// d.seqs.mu.
func (d *Daemon) warnDupKeyLocked(name, fp string) string {
	other := d.seqs.dupKeyLocked(name, fp)
	if other == "" {
		return ""
	}
	d.log.Error("two SAs share one key: their sequence numbers, and so AES-GCM/ChaCha20 nonces, repeat under it; give each SA its own key",
		"sa", name, "same_key_as", other)
	return fmt.Sprintf("--encryption-key: SA %q has this key already: under a shared key the SAs' sequence numbers (AES-GCM and ChaCha20-Poly1305 nonces) repeat, which reveals traffic and the authentication key; give every SA its own key", other)
}

// adoptSeqLocked tracks s, whose stored record was read as r (ok false:
// none), for an SA a converge brought while the daemon runs (added by
// another writer, or moved here with its reservation). s is not yet
// published. Unlike at start, a record that is not Clean is trusted: the
// host that wrote it can no longer extend it. The caller holds d.mu.
func (d *Daemon) adoptSeqLocked(s *sa.SA, byName map[string]store.Record, loadErr error) {
	b := &d.seqs
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.on {
		return
	}
	fp := saFingerprint(s)
	r, ok := byName[s.Name()]
	rec, why := judge(s, fp, r, ok, true, "")
	if loadErr != nil {
		why = fmt.Sprintf("its sequence reservation could not be read: %v", loadErr)
	}
	d.warnDupKeyLocked(s.Name(), fp)
	e := &seqEntry{s: s, rec: rec, chunk: seqChunkMin}
	b.trackLocked(s.Name(), e)
	if why != "" {
		d.refuseLocked(s, why)
		return
	}
	next := rec.next()
	s.SetNextSeq(next)
	s.SetSeqLimit(next-1, next-1) // the first packet asks runSeqs to reserve
	d.db.WantRenewal()
}

// runSeqs renews reservations until ctx is done, then writes every SA's
// exact last number (a clean stop).
func (d *Daemon) runSeqs(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.stopSeqs()
			return
		case <-d.db.RenewalWanted():
		case <-t.C:
		}
		d.renewSeqs()
	}
}

// renewSeqs reserves ahead for every SA within half a reservation of its
// limit, in one store write, and raises their limits once it is durable.
func (d *Daemon) renewSeqs() {
	b := &d.seqs
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.on {
		return
	}
	now := time.Now()
	var recs []store.Record
	var due []*seqEntry
	var wants []uint64
	for name, e := range b.entries {
		s := e.s
		lim := s.SeqLimit()
		if e.frozen || s.Refused() != "" || lim == sa.SeqUnlimited {
			continue
		}
		chunk := e.chunk
		last := s.LastSeq()
		if last+chunk/2 < lim {
			continue
		}
		if since := now.Sub(e.renewed); since < time.Second {
			chunk = min(chunk*2, seqChunkMax)
		} else if since > 30*time.Second {
			chunk = max(chunk/2, seqChunkMin)
		}
		want := max(last, lim) + chunk
		r := e.rec
		r.Limit, r.Sent, r.Clean = want, 0, false
		recs = append(recs, store.Record{Kind: store.KindSeq, Name: name, Value: mustJSON(r)})
		due = append(due, e)
		wants = append(wants, want)
		e.chunk = chunk
	}
	if len(recs) == 0 {
		return
	}
	gone, err := d.st.RenewSeqs(recs)
	if err != nil {
		if !b.failing {
			d.log.Error("sequence reservation renewal failed: SAs that reach their reservation drop packets (seq-reservation) until it succeeds", "err", err)
		}
		b.failing = true
		return
	}
	if b.failing {
		d.log.Info("sequence reservation renewal works again")
		b.failing = false
	}
	for i, e := range due {
		if slices.Contains(gone, e.s.Name()) {
			// Its record was removed or moved to another host: it must
			// not go past the limit it has.
			last := e.s.Freeze()
			e.frozen = true
			d.log.Info("SA's sequence reservation left this host (moved or removed): it stops sending", "sa", e.s.Name(), "last_seq", last)
			continue
		}
		e.rec.Limit, e.rec.Sent, e.rec.Clean = wants[i], 0, false
		e.renewed = now
		e.s.RaiseSeqLimit(wants[i], wants[i]-e.chunk/2)
	}
}

// stopSeqs freezes every SA and stores its exact last number.
func (d *Daemon) stopSeqs() {
	b := &d.seqs
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.on {
		return
	}
	var recs []store.Record
	for name, e := range b.entries {
		if e.frozen || e.s.Refused() != "" {
			continue
		}
		// Numbers handed out above the limit were refused, never sent;
		// counting them anyway only leaves a gap.
		last := e.s.Freeze()
		r := e.rec
		r.Sent, r.Limit, r.Clean = last, last, true
		recs = append(recs, store.Record{Kind: store.KindSeq, Name: name, Value: mustJSON(r)})
	}
	b.on = false
	if len(recs) == 0 {
		return
	}
	if _, err := d.st.RenewSeqs(recs); err != nil {
		d.log.Error("clean-stop sequence checkpoint failed: the next start continues above the reservations", "err", err)
	}
}
