package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// SPI is an ESP Security Parameter Index as every response writes it:
// the JSON string "0x" and 8 lower-case hex digits ("0x00001000"), or null
// for none (0 is reserved by RFC 4303 and never an SA's).
type SPI uint32

// String returns "0x%08x", "" for none.
func (s SPI) String() string {
	if s == 0 {
		return ""
	}
	return fmt.Sprintf("0x%08x", uint32(s))
}

// MarshalJSON writes "0x%08x", or null for none.
func (s SPI) MarshalJSON() ([]byte, error) {
	if s == 0 {
		return []byte("null"), nil
	}
	return json.Marshal(s.String())
}

// UnmarshalJSON reads "0x…" (1-8 hex digits) or null.
func (s *SPI) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = 0
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("SPI: want a string \"0xHEX\" or null, got %s", b)
	}
	h, ok := strings.CutPrefix(str, "0x")
	v, err := strconv.ParseUint(h, 16, 32)
	if !ok || err != nil {
		return fmt.Errorf("SPI: %q is not 0x and 1-8 hex digits", str)
	}
	*s = SPI(v)
	return nil
}

// NullString is a response field that may have no value: "" in Go, null in
// JSON (never "" or "-").
type NullString string

// MarshalJSON writes the string, or null for "".
func (s NullString) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(s))
}

// UnmarshalJSON reads a string or null.
func (s *NullString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = ""
		return nil
	}
	return json.Unmarshal(b, (*string)(s))
}
