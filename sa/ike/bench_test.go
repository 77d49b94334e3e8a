package ike

import (
	"crypto"
	"crypto/x509"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// benchPair is two engines joined directly, with callbacks that keep
// nothing, for measuring the engine alone.
type benchPair struct {
	a, b   *Engine
	queue  []Packet
	pa, pb Policy
	now    time.Time
}

func newBenchPair(tb testing.TB, certs bool) *benchPair {
	bp := &benchPair{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	pa, pb := pskPair()
	pa.IKE, pb.IKE = mustIKE(tb, "aes128gcm16-prfsha256-x25519"), mustIKE(tb, "aes128gcm16-prfsha256-x25519")
	pa.ESP, pb.ESP = mustESP(tb, "aes128gcm16"), mustESP(tb, "aes128gcm16")
	if certs {
		ca := newCA(tb, "Bench CA")
		ka, ka1 := ca.issue(tb, leafOpts{cn: "a.example", ips: []netip.Addr{addrA}})
		kb, kb1 := ca.issue(tb, leafOpts{cn: "b.example", ips: []netip.Addr{addrB}})
		pa.PSK, pb.PSK = nil, nil
		pa.IKE, pb.IKE = mustIKE(tb, "aes128gcm16-prfsha256-ecp256"), mustIKE(tb, "aes128gcm16-prfsha256-ecp256")
		pa.Cert, pa.Key, pa.Roots, pa.RemoteID = ka, ka1.(crypto.Signer), []*x509.Certificate{ca.cert}, "192.0.2.2"
		pb.Cert, pb.Key, pb.Roots, pb.AnyRemoteID, pb.LocalID = kb, kb1.(crypto.Signer), []*x509.Certificate{ca.cert}, true, "192.0.2.2"
	}
	pa.Remote = netip.Addr{} // the benchmark initiates by hand
	mk := func() *Engine {
		return New(&Config{
			Logger:  testLogger(),
			Now:     func() time.Time { return bp.now },
			Send:    func(p Packet) { bp.queue = append(bp.queue, p) },
			Install: func(*ChildSA) error { return nil },
		})
	}
	bp.a, bp.b = mk(), mk()
	if err := bp.a.SetPolicies([]Policy{pa}); err != nil {
		tb.Fatal(err)
	}
	if err := bp.b.SetPolicies([]Policy{pb}); err != nil {
		tb.Fatal(err)
	}
	bp.pa, bp.pb = pa, pb
	return bp
}

func (bp *benchPair) pump() {
	for len(bp.queue) > 0 {
		p := bp.queue[0]
		bp.queue = bp.queue[1:]
		dst := bp.a
		if p.Remote.Addr() == addrB {
			dst = bp.b
		}
		dst.Input(Packet{Local: p.Remote, Remote: p.Local, Data: p.Data})
	}
	bp.queue = bp.queue[:0]
}

// setup brings up one IKE SA with its first Child SA.
func (bp *benchPair) setup() {
	e := bp.a
	e.mu.Lock()
	p := e.order[0]
	// Initiate as the policy would if it had a Remote.
	p.Remote = addrB
	e.initiate(p)
	p.Remote = netip.Addr{}
	e.unlock()
	bp.pump()
}

func (bp *benchPair) count() (int, int) {
	up := 0
	for _, s := range bp.a.IKESAs() {
		if s.State == "ESTABLISHED" && s.Children == 1 {
			up++
		}
	}
	return up, len(bp.b.IKESAs())
}

// dropAll forgets every SA on both sides without messages.
func (bp *benchPair) dropAll() {
	for _, e := range []*Engine{bp.a, bp.b} {
		e.mu.Lock()
		for _, s := range e.sas {
			s.destroy("benchmark")
		}
		e.unlock()
	}
}

// BenchmarkSetup measures complete setups (IKE_SA_INIT, IKE_AUTH, first
// Child SA, both sides, one core): x25519 with a PSK, and ECDSA P-256
// certificates (sign, verify, chain validation) with ecp256.
func BenchmarkSetup(b *testing.B) {
	for _, bc := range []struct {
		name  string
		certs bool
	}{{"x25519-psk", false}, {"ecp256-ecdsa", true}} {
		b.Run(bc.name, func(b *testing.B) {
			bp := newBenchPair(b, bc.certs)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bp.setup()
				if i%256 == 255 {
					b.StopTimer()
					bp.dropAll()
					b.StartTimer()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "setups/s")
			if up, _ := bp.count(); up == 0 && b.N > 0 {
				b.Fatal("no IKE SA came up")
			}
		})
	}
}

// measureMemory establishes n IKE SAs (with one Child SA each) and
// returns the heap they hold, per IKE SA, on the initiator and on the
// responder side together.
func measureMemory(tb testing.TB, n int, certs bool) float64 {
	bp := newBenchPair(tb, certs)
	bp.setup() // warm up lazily built state
	bp.dropAll()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		bp.setup()
	}
	bp.queue = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	if up, resp := bp.count(); up != n || resp != n {
		tb.Fatalf("%d/%d IKE SAs up, want %d", up, resp, n)
	}
	runtime.KeepAlive(bp)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// BenchmarkMemoryPerIKESA reports the heap held per established IKE SA
// pair (initiator state + responder state, each with one Child SA), over
// 1000 SAs.
func BenchmarkMemoryPerIKESA(b *testing.B) {
	for i := 0; i < b.N; i++ {
		per := measureMemory(b, 1000, false)
		b.ReportMetric(per, "bytes/IKE-SA-pair")
		b.ReportMetric(per/2, "bytes/IKE-SA")
	}
}

func TestMemoryPerIKESA(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	per := measureMemory(t, 1000, false)
	t.Logf("heap per IKE SA (one side, one Child SA): %.0f bytes", per/2)
	if per/2 > 32<<10 {
		t.Fatalf("%.0f bytes per IKE SA; more than 32 KiB", per/2)
	}
}
