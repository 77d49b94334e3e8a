package libvirt

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// XDR (RFC 4506) as libvirt's RPC protocol uses it: big-endian 32-bit
// words; strings and variable opaque data as a length word, the bytes and
// zero padding to a multiple of 4; an optional value ("pointer") as a
// boolean word and, if 1, the value.

func xdrU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func xdrString(b []byte, s string) []byte {
	b = xdrU32(b, uint32(len(s)))
	b = append(b, s...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func xdrOptString(b []byte, s *string) []byte {
	if s == nil {
		return xdrU32(b, 0)
	}
	return xdrString(xdrU32(b, 1), *s)
}

var errShort = errors.New("truncated XDR data")

// xdrDec reads XDR from b. The first error sticks: later reads return
// zero values, and err says what went wrong first. Every read checks the
// length first.
type xdrDec struct {
	b   []byte
	err error
}

func (d *xdrDec) u32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.err = errShort
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *xdrDec) i32() int32 { return int32(d.u32()) }

// fixed reads n bytes of fixed-length opaque data (padded to 4).
func (d *xdrDec) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	padded := (n + 3) &^ 3
	if n < 0 || len(d.b) < padded {
		d.err = errShort
		return nil
	}
	v := d.b[:n]
	d.b = d.b[padded:]
	return v
}

// str reads a string of at most max bytes.
func (d *xdrDec) str(max int) string {
	n := d.u32()
	if d.err != nil {
		return ""
	}
	if n > uint32(max) {
		d.err = fmt.Errorf("XDR string of %d bytes; at most %d expected", n, max)
		return ""
	}
	return string(d.fixed(int(n)))
}

// optStr reads an optional string; ok is false for a null one.
func (d *xdrDec) optStr(max int) (s string, ok bool) {
	switch d.u32() {
	case 0:
		return "", false
	case 1:
		return d.str(max), d.err == nil
	}
	if d.err == nil {
		d.err = errors.New("XDR optional value: flag is neither 0 nor 1")
	}
	return "", false
}
