package wire

import (
	"reflect"
	"testing"
)

func fuzzSeeds(f *testing.F) [][]byte {
	seeds := [][]byte{
		unhex(f, goldenInit), unhex(f, goldenAuth), unhex(f, goldenFrag),
		message(PayloadIDi, unhex(f, goldenInner)),
		msgOf(raw{t: 200, flags: 0x80}),
		msgOf(raw{t: PayloadDelete, body: []byte{3, 255, 0xff, 0xff}}),
		intermediateSeed(false), intermediateSeed(true),
	}
	if ds, err := readPcapUDP("testdata/strongswan-5.9.8-psk.pcap"); err == nil {
		seeds = append(seeds, ds...)
	} else {
		f.Fatal(err)
	}
	return seeds
}

// intermediateSeed is an IKE_INTERMEDIATE message (RFC 9242) of an
// additional ML-KEM-768 key exchange (RFC 9370): encrypted as sent, or
// with its KE payload (1184-byte encapsulation key) in the clear, as the
// decrypted inner chain the engine parses.
func intermediateSeed(plain bool) []byte {
	h := Header{SPIi: 0x0102030405060708, SPIr: 0x1112131415161718, Exchange: ExchangeIntermediate, Flags: FlagInitiator, MessageID: 1}
	ke := &KE{Group: 36, Data: make([]byte, 1184)}
	for i := range ke.Data {
		ke.Data[i] = byte(i * 7)
	}
	if plain {
		return (&Message{Header: h, Payloads: []Payload{ke}}).Encode()
	}
	_, body := AppendPayloads(nil, []Payload{ke})
	return (&Message{Header: h, Payloads: []Payload{&Encrypted{Inner: PayloadKE, Body: append(make([]byte, 8), body...)}}}).Encode()
}

// FuzzParse: Parse never panics; what it accepts encodes (no panic) to bytes
// that parse to the same message, and encoding is then a fixed point.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if m != nil {
				t.Fatal("message returned with an error")
			}
			return
		}
		// Encode may only change Length: input that was not canonical
		// (skipped transform attributes) encodes shorter.
		h := m.Header
		enc := m.Encode()
		h.Length = uint32(len(enc))
		if m.Header != h {
			t.Fatalf("Encode changed the header: %+v, want %+v", m.Header, h)
		}
		want := dump(m)
		m2, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(Encode(m)): %v\nm = %s\nenc = %x", err, want, enc)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("Parse(Encode(m)) != m:\n%s\n%s", want, dump(m2))
		}
		if enc2 := m2.Encode(); string(enc2) != string(enc) {
			t.Fatalf("Encode not a fixed point:\n%x\n%x", enc, enc2)
		}
	})
}

// FuzzParsePayloads does the same for a decrypted inner chain.
func FuzzParsePayloads(f *testing.F) {
	f.Add(uint8(PayloadIDi), unhex(f, goldenInner))
	for _, s := range fuzzSeeds(f) {
		f.Add(s[16], s[HeaderLen:])
	}
	f.Fuzz(func(t *testing.T, first uint8, b []byte) {
		ps, err := ParsePayloads(PayloadType(first), b)
		if err != nil {
			return
		}
		got, enc := AppendPayloads(nil, ps)
		if len(ps) > 0 && got != PayloadType(first) {
			t.Fatalf("first %v, want %v", got, PayloadType(first))
		}
		ps2, err := ParsePayloads(got, enc)
		if err != nil {
			t.Fatalf("ParsePayloads(AppendPayloads(ps)): %v\nps = %s", err, dump(ps...))
		}
		if !reflect.DeepEqual(ps, ps2) {
			t.Fatalf("round trip:\n%s\n%s", dump(ps...), dump(ps2...))
		}
	})
}

// FuzzReassembler: any sequence of fragments keeps state within the limits
// and a completed message is exactly its fragments in order.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{1, 3, 0, 2, 3, 1, 3, 3, 1, 3})
	f.Add([]byte{1, 2, 1, 1, 3, 2, 2, 2, 0, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		r := Reassembler{MaxFragments: 8, MaxBytes: 64, MaxMessages: 2}
		for i := 0; i+2 < len(ops) && i < 300; i += 3 {
			id, n, total := uint32(ops[i]%4), uint16(ops[i+1]%10), uint16(ops[i+2]%10)
			inner := PayloadNone
			if n == 1 {
				inner = PayloadNonce
			}
			plain := []byte{byte(n), byte(total)}
			_, out, err := r.Add(Header{MessageID: id}, &Fragment{Inner: inner, Number: n, Total: total}, plain, t0)
			if err == nil && out != nil {
				if len(out) != 2*int(total) {
					t.Fatalf("message of %d fragments reassembled to %d bytes", total, len(out))
				}
				for k := 0; k < int(total); k++ {
					if out[2*k] != byte(k+1) || out[2*k+1] != byte(total) {
						t.Fatalf("reassembled %x", out)
					}
				}
			}
			if r.Pending() > 2 {
				t.Fatalf("%d messages pending, limit 2", r.Pending())
			}
			if h := r.Held(); h < 0 || h > 2*(64+8*fragCost(0)+24*8) || (r.Pending() == 0) != (h == 0) {
				t.Fatalf("Held %d with %d messages pending", h, r.Pending())
			}
		}
	})
}
