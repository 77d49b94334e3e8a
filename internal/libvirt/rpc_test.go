package libvirt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeLibvirt serves the RPC protocol's procedures the client uses, as
// libvirtd does, on a unix socket.
type fakeLibvirt struct {
	t       *testing.T
	sock    string
	auth    []uint32
	domains []DomainRef
	xml     map[string]string // by name; a missing name answers VIR_ERR_NO_DOMAIN
	opened  chan string       // URIs opened
	hang    bool              // never answer the domain list
}

func newFakeLibvirt(t *testing.T) *fakeLibvirt {
	f := &fakeLibvirt{t: t, sock: filepath.Join(t.TempDir(), "libvirt-sock-ro"), auth: []uint32{authNone},
		xml: map[string]string{}, opened: make(chan string, 8)}
	ln, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func message(proc, typ, serial, status uint32, body []byte) []byte {
	b := xdrU32(nil, uint32(4+headerLen+len(body)))
	for _, w := range []uint32{remoteProgram, remoteVersion, proc, typ, serial, status} {
		b = xdrU32(b, w)
	}
	return append(b, body...)
}

func errorBody(code int32, msg string) []byte {
	b := xdrU32(nil, uint32(code))
	b = xdrU32(b, 10) // domain
	b = xdrOptString(b, &msg)
	b = xdrU32(b, 2) // level
	b = xdrU32(b, 0) // dom
	for i := 0; i < 3; i++ {
		b = xdrU32(b, 0) // str1..3
	}
	b = xdrU32(b, 0)
	b = xdrU32(b, 0)
	return xdrU32(b, 0) // net
}

func (f *fakeLibvirt) serve(c net.Conn) {
	defer c.Close()
	for {
		h, body, err := readMessage(c)
		if err != nil {
			return
		}
		reply := func(b []byte) { c.Write(message(h.proc, msgReply, h.serial, statusOK, b)) }
		fail := func(code int32, msg string) {
			c.Write(message(h.proc, msgReply, h.serial, statusError, errorBody(code, msg)))
		}
		switch h.proc {
		case procAuthList:
			b := xdrU32(nil, uint32(len(f.auth)))
			for _, a := range f.auth {
				b = xdrU32(b, a)
			}
			reply(b)
		case procAuthPolkit:
			reply(xdrU32(nil, 1))
		case procConnectOpen:
			d := xdrDec{b: body}
			uri, _ := d.optStr(maxString)
			if flags := d.u32(); d.err != nil || flags != connectReadOnly {
				fail(1, "bad open")
				continue
			}
			f.opened <- uri
			reply(nil)
		case procConnectListAllDomains:
			if f.hang {
				continue
			}
			// An event first: the client must skip it.
			c.Write(message(99, 2, 0, statusOK, []byte{0, 0, 0, 0}))
			b := xdrU32(nil, uint32(len(f.domains)))
			for _, r := range f.domains {
				b = xdrString(b, r.Name)
				b = append(b, r.UUID[:]...)
				b = xdrU32(b, uint32(r.ID))
			}
			reply(xdrU32(b, uint32(len(f.domains))))
		case procDomainGetXMLDesc:
			d := xdrDec{b: body}
			name := d.str(maxString)
			x, ok := f.xml[name]
			if !ok {
				fail(errNoDomain, "Domain not found: no domain with matching name '"+name+"'")
				continue
			}
			reply(xdrString(nil, x))
		case procConnectClose:
			reply(nil)
			return
		default:
			fail(1, "unknown procedure")
		}
	}
}

func TestClientListLive(t *testing.T) {
	f := newFakeLibvirt(t)
	u1 := [16]byte{0x8a, 0xd6, 0x1a, 0xe1, 0x04, 0x47, 0x41, 0xa9, 0xa1, 0xed, 0xd5, 0x3c, 0xe3, 0x17, 0xff, 0x72}
	f.domains = []DomainRef{{Name: "web1", UUID: u1, ID: 3}, {Name: "gone", ID: 4}, {Name: "db", ID: 5}}
	f.xml["web1"] = "<domain>web1</domain>"
	f.xml["db"] = strings.Repeat("x", 200<<10) // more than one read step
	for _, auth := range [][]uint32{{authNone}, {authPolkit}, {}} {
		f.auth = auth
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		doms, used, err := ListLive(ctx, []string{filepath.Join(t.TempDir(), "absent"), f.sock}, DefaultURI)
		cancel()
		if err != nil {
			t.Fatalf("auth %v: %v", auth, err)
		}
		if used != f.sock {
			t.Errorf("used %s, want %s", used, f.sock)
		}
		if uri := <-f.opened; uri != DefaultURI {
			t.Errorf("opened %q", uri)
		}
		if len(doms) != 2 || doms[0].Ref.Name != "web1" || string(doms[0].XML) != f.xml["web1"] || doms[1].Ref.Name != "db" || len(doms[1].XML) != 200<<10 {
			t.Fatalf("domains %+v", doms)
		}
		if got := doms[0].Ref.UUIDString(); got != "8ad61ae1-0447-41a9-a1ed-d53ce317ff72" || doms[0].Ref.ID != 3 {
			t.Errorf("UUID %s, ID %d", got, doms[0].Ref.ID)
		}
	}

	f.auth = []uint32{authSASL}
	_, _, err := ListLive(context.Background(), []string{f.sock}, DefaultURI)
	if err == nil || !strings.Contains(err.Error(), "SASL") {
		t.Fatalf("SASL only: %v", err)
	}

	// Errors come back as *RPCError with libvirt's message.
	f.auth = []uint32{authNone}
	c, err := Dial(context.Background(), f.sock, DefaultURI)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DomainXML(context.Background(), DomainRef{Name: "gone"})
	var re *RPCError
	if !errors.As(err, &re) || re.Code != errNoDomain || !strings.Contains(err.Error(), "no domain with matching name 'gone'") {
		t.Fatalf("DomainXML(gone) = %v", err)
	}
	c.Close()

	// A libvirt that does not answer does not hold the caller past its
	// deadline.
	f.hang = true
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = ListLive(ctx, []string{f.sock}, DefaultURI)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("hanging libvirt: %v after %v", err, time.Since(start))
	}
}

func TestReadMessageBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"short length", []byte{0, 0, 0, 8, 0, 0, 0, 0}, "outside"},
		{"huge length", []byte{0x7f, 0, 0, 0}, "outside"},
		{"cut short", append(binary.BigEndian.AppendUint32(nil, 4+headerLen+8), make([]byte, headerLen)...), "cut short"},
	} {
		_, _, err := readMessage(bytes.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A round trip.
	h, body, err := readMessage(bytes.NewReader(message(procDomainGetXMLDesc, msgReply, 7, statusOK, xdrString(nil, "abc"))))
	if err != nil || h.proc != procDomainGetXMLDesc || h.serial != 7 || h.typ != msgReply {
		t.Fatalf("%+v %v", h, err)
	}
	d := xdrDec{b: body}
	if s := d.str(10); s != "abc" || d.err != nil || len(d.b) != 0 {
		t.Fatalf("body %q %v", s, d.err)
	}
}

func TestDecodeDomainListRefusesLies(t *testing.T) {
	// 1,000,000 domains announced in 8 bytes: refused before allocating.
	if _, err := decodeDomainList(xdrU32(xdrU32(nil, 1000000), 0)); err == nil {
		t.Fatal("accepted")
	}
	b := xdrString(xdrU32(nil, 1), "a")
	b = append(b, make([]byte, 16)...)
	b = xdrU32(xdrU32(b, 1), 1)
	doms, err := decodeDomainList(b)
	if err != nil || len(doms) != 1 || doms[0].Name != "a" || doms[0].ID != 1 {
		t.Fatalf("%+v %v", doms, err)
	}
	if _, err := decodeDomainList(b[:len(b)-1]); err == nil {
		t.Fatal("truncated list accepted")
	}
}

func FuzzReadMessage(f *testing.F) {
	f.Add(message(procDomainGetXMLDesc, msgReply, 1, statusOK, xdrString(nil, "<domain/>")))
	f.Add(message(procConnectOpen, msgReply, 1, statusError, errorBody(42, "no domain")))
	f.Add([]byte{0, 0, 0, 28})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := readMessage(bytes.NewReader(b))
		if err != nil {
			return
		}
		if int(binary.BigEndian.Uint32(b)) != 4+headerLen+len(body) {
			t.Fatalf("body of %d bytes from length %d", len(body), binary.BigEndian.Uint32(b))
		}
		_ = h
		decodeDomainList(body)
		decodeError(body)
		d := xdrDec{b: body}
		d.optStr(maxString)
	})
}

func FuzzDecodeDomainList(f *testing.F) {
	b := xdrString(xdrU32(nil, 1), "web1")
	b = append(b, make([]byte, 16)...)
	f.Add(xdrU32(xdrU32(b, 3), 1))
	f.Add(xdrU32(nil, 0xffffffff))
	f.Fuzz(func(t *testing.T, b []byte) {
		doms, err := decodeDomainList(b)
		if err == nil && len(doms)*24 > len(b) {
			t.Fatalf("%d domains from %d bytes", len(doms), len(b))
		}
		if e, ok := decodeError(b).(*RPCError); ok && e.Message == "" {
			t.Fatal("error without a message")
		}
	})
}

// rawLibvirt accepts connections on a unix socket; on each it reads the
// first call, writes answer (if any) and then closes the connection if
// hangup, else holds it open until the client closes it.
func rawLibvirt(t *testing.T, answer []byte, hangup bool) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "libvirt-sock-ro")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, _, err := readMessage(c); err != nil {
					return
				}
				if answer != nil {
					c.Write(answer)
				}
				if !hangup {
					io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	return sock
}

// TestListLiveMalformedReply holds the client to bounds on what the peer
// on the socket sends: a message shorter than its header or longer than
// libvirt's maximum is an error of the call (github.com/digitalocean/
// go-libvirt, at the version tried, panics in its reader goroutine on the
// first, which ends the daemon, and allocates the second whole).
func TestListLiveMalformedReply(t *testing.T) {
	header := message(procAuthList, msgReply, 1, statusOK, nil)[4:]
	for _, tc := range []struct {
		name   string
		answer []byte
		want   string
	}{
		{"length below the header", append(binary.BigEndian.AppendUint32(nil, 8), header...), "outside"},
		{"length above the maximum", append(binary.BigEndian.AppendUint32(nil, 0xffffffff), header...), "outside"},
		{"hang-up mid-message", binary.BigEndian.AppendUint32(nil, 1000), "cut short"},
		{"hang-up without answer", nil, "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := rawLibvirt(t, tc.answer, true)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _, err := ListLive(ctx, []string{sock}, DefaultURI)
			if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ListLive = %v, want an error saying %q before the deadline", err, tc.want)
			}
		})
	}
}

func TestListLiveCancel(t *testing.T) {
	sock := rawLibvirt(t, nil, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := ListLive(ctx, []string{sock}, DefaultURI)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // usually waiting for the reply by now; either way it must end
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ListLive after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ListLive still waits 5 s after its context was cancelled")
	}
}
