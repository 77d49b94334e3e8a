package suite

import (
	"encoding/hex"
	"strings"
	"testing"
)

// unhex decodes hex written the way RFCs print it: any case, with blanks
// and line breaks anywhere.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// seqReader is a deterministic io.Reader: 0, 1, 2, … from start.
type seqReader struct{ b byte }

func (r *seqReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b
		r.b++
	}
	return len(p), nil
}
