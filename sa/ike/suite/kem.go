package suite

import (
	"crypto/mlkem"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Key exchange methods beyond Diffie-Hellman: ML-KEM (FIPS 203) in the
// "Transform Type 4 - Key Exchange Method Transform IDs" registry
// (draft-ietf-ipsecme-ikev2-mlkem), used here as additional key
// exchanges of RFC 9370 in IKE_INTERMEDIATE exchanges (RFC 9242).
const (
	KEMLKEM768  = 36
	KEMLKEM1024 = 37
)

// MaxAddKE is the number of Additional Key Exchange transform types
// (ADDKE1..ADDKE7, RFC 9370 §2.2.1).
const MaxAddKE = 7

type kemAlg struct {
	name string
	id   uint16
	ek   int // encapsulation key: the initiator's KE data
	ct   int // ciphertext: the responder's KE data
}

var kems = []kemAlg{
	{name: "mlkem768", id: KEMLKEM768, ek: mlkem.EncapsulationKeySize768, ct: mlkem.CiphertextSize768},
	{name: "mlkem1024", id: KEMLKEM1024, ek: mlkem.EncapsulationKeySize1024, ct: mlkem.CiphertextSize1024},
}

func findKEM(id uint16) *kemAlg {
	for i := range kems {
		if kems[i].id == id {
			return &kems[i]
		}
	}
	return nil
}

func kemByName(name string) *kemAlg {
	for i := range kems {
		if kems[i].name == name {
			return &kems[i]
		}
	}
	return nil
}

// validKE reports whether id is a key exchange method this package can
// run as an additional key exchange: a DH group or an ML-KEM.
func validKE(id uint16) bool { return findDH(id) != nil || findKEM(id) != nil }

// KEName is the strongSwan keyword of a key exchange method: a DH group
// (DHName) or "mlkem768", "mlkem1024"; "ke<N>" for another number.
func KEName(id uint16) string {
	if k := findKEM(id); k != nil {
		return k.name
	}
	if id != 0 && findDH(id) == nil {
		return "ke" + strconv.Itoa(int(id))
	}
	return DHName(id)
}

func keNames() string {
	n := dhNames(false)
	for _, k := range kems {
		n += ", " + k.name
	}
	return n
}

// ErrBadKE is returned for a peer's KE data of the wrong length or that
// the method refuses (an ML-KEM encapsulation key that fails the FIPS 203
// modulus check). The exchange must fail.
var ErrBadKE = errors.New("suite: invalid key exchange data")

// NewKE starts the initiator's side of a key exchange with method: a DH
// group as NewDH does, or an ML-KEM decapsulation key whose Public is the
// encapsulation key and whose Shared decapsulates the responder's
// ciphertext. The ML-KEM seed (d || z, FIPS 203 §7.1) is read from r
// (nil: crypto/rand), so a deterministic r gives a deterministic key.
func NewKE(method uint16, r io.Reader) (DH, error) {
	k := findKEM(method)
	if k == nil {
		if findDH(method) != nil {
			return NewDH(method, r)
		}
		return nil, fmt.Errorf("key exchange method %d is not supported; use %s", method, keNames())
	}
	if r == nil {
		r = rand.Reader
	}
	seed := make([]byte, mlkem.SeedSize)
	defer clear(seed)
	if _, err := io.ReadFull(r, seed); err != nil {
		return nil, fmt.Errorf("suite: %s: reading randomness: %w", k.name, err)
	}
	d := &kemDecap{alg: k}
	var err error
	switch method {
	case KEMLKEM768:
		d.dk768, err = mlkem.NewDecapsulationKey768(seed)
		if err == nil {
			d.pub = d.dk768.EncapsulationKey().Bytes()
		}
	case KEMLKEM1024:
		d.dk1024, err = mlkem.NewDecapsulationKey1024(seed)
		if err == nil {
			d.pub = d.dk1024.EncapsulationKey().Bytes()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("suite: %s: %w", k.name, err)
	}
	return d, nil
}

// kemDecap is the initiator's side of an ML-KEM exchange.
type kemDecap struct {
	alg    *kemAlg
	dk768  *mlkem.DecapsulationKey768
	dk1024 *mlkem.DecapsulationKey1024
	pub    []byte
}

func (d *kemDecap) Group() uint16  { return d.alg.id }
func (d *kemDecap) Public() []byte { return d.pub }

// Shared decapsulates the responder's ciphertext. ML-KEM decapsulation
// never fails on a ciphertext of the right length (implicit rejection,
// FIPS 203 §6.3): a forged one gives a key the peer does not have, and
// the exchange fails later, at the first message under the new keys.
func (d *kemDecap) Shared(ct []byte) ([]byte, error) {
	if len(ct) != d.alg.ct {
		return nil, fmt.Errorf("%w: %s ciphertext is %d bytes, want %d", ErrBadKE, d.alg.name, len(ct), d.alg.ct)
	}
	var k []byte
	var err error
	if d.dk768 != nil {
		k, err = d.dk768.Decapsulate(ct)
	} else {
		k, err = d.dk1024.Decapsulate(ct)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKE, d.alg.name, err)
	}
	return k, nil
}

// RespondKE runs the responder's side of a key exchange with method on
// the initiator's KE data peer: it returns the responder's KE data and
// the shared secret. For a DH group that is a fresh key pair (from r) and
// g^ir; for ML-KEM the ciphertext and key of encapsulating to peer.
// crypto/mlkem draws the encapsulation randomness itself, from the
// system (r is not used for it).
func RespondKE(method uint16, peer []byte, r io.Reader) (public, shared []byte, err error) {
	k := findKEM(method)
	if k == nil {
		dh, err := NewKE(method, r)
		if err != nil {
			return nil, nil, err
		}
		s, err := dh.Shared(peer)
		if err != nil {
			return nil, nil, err
		}
		return dh.Public(), s, nil
	}
	if len(peer) != k.ek {
		return nil, nil, fmt.Errorf("%w: %s encapsulation key is %d bytes, want %d", ErrBadKE, k.name, len(peer), k.ek)
	}
	switch method {
	case KEMLKEM768:
		ek, err := mlkem.NewEncapsulationKey768(peer)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrBadKE, k.name, err)
		}
		shared, public = ek.Encapsulate()
	case KEMLKEM1024:
		ek, err := mlkem.NewEncapsulationKey1024(peer)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrBadKE, k.name, err)
		}
		shared, public = ek.Encapsulate()
	}
	return public, shared, nil
}

// KEDataLen is the length of the KE payload's data for method from the
// initiator (i) or the responder: the public value of a DH group, the
// encapsulation key or ciphertext of an ML-KEM; 0 for an unknown method.
func KEDataLen(method uint16, initiator bool) int {
	if k := findKEM(method); k != nil {
		if initiator {
			return k.ek
		}
		return k.ct
	}
	return PublicLen(method)
}
