package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// record is one packet as readRef parses it back.
type record struct {
	sec, usec, capLen, origLen uint32
	data                       []byte
}

// readRef is a deliberately naive reader of the file layout (the
// reference the Writer is checked against): fixed offsets, no shortcuts.
func readRef(t *testing.T, b []byte) (hdr [6]uint32, recs []record) {
	t.Helper()
	if len(b) < 24 {
		t.Fatalf("file of %d bytes has no header", len(b))
	}
	le := binary.LittleEndian
	hdr = [6]uint32{le.Uint32(b[0:]), uint32(le.Uint16(b[4:])), uint32(le.Uint16(b[6:])), le.Uint32(b[8:]) | le.Uint32(b[12:]), le.Uint32(b[16:]), le.Uint32(b[20:])}
	for b = b[24:]; len(b) > 0; {
		if len(b) < 16 {
			t.Fatalf("trailing %d bytes are not a record header", len(b))
		}
		r := record{sec: le.Uint32(b[0:]), usec: le.Uint32(b[4:]), capLen: le.Uint32(b[8:]), origLen: le.Uint32(b[12:])}
		if int(r.capLen) > len(b)-16 {
			t.Fatalf("record claims %d bytes, %d left", r.capLen, len(b)-16)
		}
		r.data = b[16 : 16+r.capLen]
		recs = append(recs, r)
		b = b[16+r.capLen:]
	}
	return hdr, recs
}

func TestWriter(t *testing.T) {
	ts := time.Unix(1700000000, 123456789)
	for _, tc := range []struct {
		name    string
		lt      LinkType
		snapLen int
		pkts    [][]byte
		want    [][]byte // stored bytes per packet
	}{
		{name: "raw", lt: LinkTypeRaw, pkts: [][]byte{{0x60, 1, 2}, {0x45}}, want: [][]byte{{0x60, 1, 2}, {0x45}}},
		{name: "ethernet", lt: LinkTypeEthernet, pkts: [][]byte{make([]byte, 60)}, want: [][]byte{make([]byte, 60)}},
		{name: "empty packet", lt: LinkTypeRaw, pkts: [][]byte{{}}, want: [][]byte{{}}},
		{name: "no packets", lt: LinkTypeRaw},
		{name: "truncated to snaplen", lt: LinkTypeRaw, snapLen: 4, pkts: [][]byte{{1, 2, 3, 4, 5, 6}}, want: [][]byte{{1, 2, 3, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, tc.lt, tc.snapLen)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.pkts {
				if err := w.WritePacket(ts, p); err != nil {
					t.Fatal(err)
				}
			}
			hdr, recs := readRef(t, buf.Bytes())
			snap := uint32(tc.snapLen)
			if snap == 0 {
				snap = DefaultSnapLen
			}
			if want := [6]uint32{0xa1b2c3d4, 2, 4, 0, snap, uint32(tc.lt)}; hdr != want {
				t.Errorf("file header %v, want %v", hdr, want)
			}
			if len(recs) != len(tc.pkts) {
				t.Fatalf("%d records, want %d", len(recs), len(tc.pkts))
			}
			for i, r := range recs {
				if r.sec != 1700000000 || r.usec != 123456 {
					t.Errorf("record %d: time %d.%06d, want 1700000000.123456", i, r.sec, r.usec)
				}
				if r.origLen != uint32(len(tc.pkts[i])) || r.capLen != uint32(len(tc.want[i])) {
					t.Errorf("record %d: caplen/len %d/%d, want %d/%d", i, r.capLen, r.origLen, len(tc.want[i]), len(tc.pkts[i]))
				}
				if !bytes.Equal(r.data, tc.want[i]) {
					t.Errorf("record %d: data %x, want %x", i, r.data, tc.want[i])
				}
			}
		})
	}
}

func TestNewWriterSnapLen(t *testing.T) {
	for _, n := range []int{-1, DefaultSnapLen + 1} {
		if _, err := NewWriter(&bytes.Buffer{}, LinkTypeRaw, n); err == nil {
			t.Errorf("snap length %d accepted", n)
		}
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errBroken
	}
	f.after--
	return len(p), nil
}

var errBroken = errors.New("broken pipe")

func TestWriteErrorsWrapped(t *testing.T) {
	if _, err := NewWriter(&failWriter{}, LinkTypeRaw, 0); !errors.Is(err, errBroken) {
		t.Errorf("file header: %v, want it to wrap %v", err, errBroken)
	}
	for after := 1; after <= 2; after++ {
		w, err := NewWriter(&failWriter{after: after}, LinkTypeRaw, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(time.Now(), []byte{0x45}); !errors.Is(err, errBroken) {
			t.Errorf("write %d: %v, want it to wrap %v", after, err, errBroken)
		}
	}
}

func TestLinkTypeString(t *testing.T) {
	for lt, want := range map[LinkType]string{LinkTypeRaw: "raw", LinkTypeEthernet: "ethernet", 7: "LinkType(7)"} {
		if got := lt.String(); got != want {
			t.Errorf("%d: %q, want %q", uint32(lt), got, want)
		}
	}
}
