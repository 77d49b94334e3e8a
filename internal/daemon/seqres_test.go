package daemon

import (
	"github.com/vifsec/vifsec/drop"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vifsec/vifsec/internal/store"
	"github.com/vifsec/vifsec/sa"
	"github.com/vifsec/vifsec/tenant"
)

// seqHost is one host's state directory and anchor, restarted at will.
type seqHost struct {
	t            *testing.T
	path, anchor string
	st           *store.Bolt
	d            *Daemon
	sent         map[uint64]bool // every number handed out by any run
}

func (h *seqHost) start() {
	h.t.Helper()
	st, err := store.OpenBolt(h.path, 0)
	must(h.t, err)
	d, err := New(st, &Config{SeqAnchor: h.anchor})
	must(h.t, err)
	h.st, h.d = st, d
}

// crash ends the daemon as kill -9 does: nothing more is written.
func (h *seqHost) crash() { must(h.t, h.st.Close()) }

func (h *seqHost) stop() {
	stopCleanly(h.d)
	must(h.t, h.st.Close())
}

// send hands out n numbers as the data path would, renewing the
// reservation when asked (as runSeqs does), and fails on any number
// handed out before, by this run or an earlier one.
func (h *seqHost) send(n int) (dropped int) {
	h.t.Helper()
	s := h.d.SADB().Get("out")
	for range n {
		seq, d := s.NextSeq()
		select {
		case <-h.d.SADB().RenewalWanted():
			h.d.renewSeqs()
		default:
		}
		if d != drop.None {
			dropped++
			continue
		}
		if h.sent[seq] {
			h.t.Fatalf("sequence number %d sent twice under one key", seq)
		}
		h.sent[seq] = true
	}
	return dropped
}

func newSeqHost(t *testing.T) *seqHost {
	dir := t.TempDir()
	h := &seqHost{t: t, path: filepath.Join(dir, "state", "state.db"), anchor: filepath.Join(dir, "run", "seq.anchor"), sent: map[uint64]bool{}}
	must(t, os.MkdirAll(filepath.Dir(h.path), 0o700))
	h.start()
	must(t, h.d.AddTenant(tenant.Tenant{Name: "t1", DefaultAction: tenant.ActionNone}))
	must(t, h.d.AttachVM(vm("vm1", "t1", "52:54:00:00:00:01", 10)))
	mustW(t)(h.d.AddSA("vm1", gcmSA(t, "out", 0x1000, sa.ModeTransport)))
	return h
}

// TestSeqReservationsRestart: across clean stops, crashes (also right
// after a burst of several reservations) and restarts, an SA never hands
// out a number twice, and continues exactly after a clean stop.
func TestSeqReservationsRestart(t *testing.T) {
	h := newSeqHost(t)
	h.send(1000)
	h.stop()
	h.start()
	if s, _ := h.d.SADB().Get("out").NextSeq(); s != 1001 {
		t.Errorf("after a clean stop the SA continues at %d, want 1001", s)
	}
	h.sent[1001] = true
	h.send(5000)
	h.crash()
	h.start()
	h.send(3 * seqChunkMin) // a burst over several renewals
	h.crash()
	h.start()
	if h.send(10) != 0 {
		t.Error("packets dropped after a crash and restart")
	}
	if s := h.d.SADB().Get("out"); s.Refused() != "" {
		t.Errorf("refused after a crash on the same boot: %s", s.Refused())
	}
	h.stop()
}

// TestSeqReservationsFailClosed: where the daemon cannot prove what an SA
// sent, the SA refuses to send, says why, and keeps refusing.
func TestSeqReservationsFailClosed(t *testing.T) {
	t.Run("restored copy", func(t *testing.T) {
		h := newSeqHost(t)
		h.send(100)
		h.stop()
		backup, err := os.ReadFile(h.path)
		must(t, err)
		h.start()
		h.send(2 * seqChunkMin)
		h.stop()
		must(t, os.WriteFile(h.path, backup, 0o600)) // the old state is restored
		h.start()
		s := h.d.SADB().Get("out")
		if _, d := s.NextSeq(); d != drop.SeqRefused || !strings.Contains(s.Refused(), "restored") {
			t.Fatalf("SA of a restored state: %v %q, want refused", d, s.Refused())
		}
		h.stop()
		h.start() // the refusal is stored: the next start does not trust the old record
		if s := h.d.SADB().Get("out"); s.Refused() == "" {
			t.Error("a restart forgot the refusal")
		}
		h.stop()
	})
	t.Run("crash then reboot", func(t *testing.T) {
		h := newSeqHost(t)
		h.send(100)
		h.crash()
		must(t, os.Remove(h.anchor)) // /run is empty after a reboot
		h.start()
		if s := h.d.SADB().Get("out"); s.Refused() == "" {
			t.Error("an SA that did not stop cleanly sends after a reboot")
		}
		h.stop()
	})
	t.Run("clean stop then reboot", func(t *testing.T) {
		h := newSeqHost(t)
		h.send(100)
		h.stop()
		must(t, os.Remove(h.anchor))
		h.start()
		if s, d := h.d.SADB().Get("out").NextSeq(); d != drop.None || s != 101 {
			t.Errorf("after a clean stop and a reboot: %d %v, want 101", s, d)
		}
		h.stop()
	})
	t.Run("no reservation record", func(t *testing.T) {
		h := newSeqHost(t)
		h.stop()
		st, err := store.OpenBolt(h.path, 0)
		must(t, err)
		must(t, st.Commit([]store.Op{store.Delete(store.KindSeq, "out")})) // as an older vifsec stored it
		must(t, st.Close())
		h.start()
		s := h.d.SADB().Get("out")
		if _, d := s.NextSeq(); d != drop.SeqRefused || !strings.Contains(s.Refused(), "no sequence reservation") {
			t.Errorf("SA without a reservation: %v %q", d, s.Refused())
		}
		var info SAInfo
		for _, x := range h.d.SAs() {
			info = x
		}
		if info.Refused == "" {
			t.Error("sa list does not show the refusal")
		}
		// Replacing it with a new key lets traffic flow.
		must(t, h.d.RemoveSA("out"))
		c := gcmSA(t, "out", 0x1001, sa.ModeTransport)
		c.EncKey = nameKey("out-2", 20)
		mustW(t)(h.d.AddSA("vm1", c))
		if _, d := h.d.SADB().Get("out").NextSeq(); d != drop.None {
			t.Errorf("re-keyed SA: %v", d)
		}
		h.stop()
	})
}

func TestSeqDuplicateKeyWarned(t *testing.T) {
	h := newSeqHost(t)
	c := gcmSA(t, "out2", 0x1002, sa.ModeTransport)
	c.EncKey = nameKey("out", 20) // out's key
	w, err := h.d.AddSA("vm1", c)
	if err != nil || len(w) != 1 || !strings.Contains(w[0], `SA "out" has this key already`) {
		t.Errorf("same key twice: %q %v", w, err)
	}
	h.stop()
}
