package api

import "testing"

func TestSPIJSON(t *testing.T) {
	tests := []struct {
		name string
		spi  SPI
		json string
	}{
		{"none", 0, "null"},
		{"small", 0x100, `"0x00000100"`},
		{"max", 0xffffffff, `"0xffffffff"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.spi.MarshalJSON()
			if err != nil || string(b) != tt.json {
				t.Fatalf("marshal %d = %s, %v; want %s", tt.spi, b, err, tt.json)
			}
			var back SPI = 7
			if err := back.UnmarshalJSON(b); err != nil || back != tt.spi {
				t.Errorf("unmarshal %s = %d, %v", b, back, err)
			}
		})
	}
	var s SPI
	for _, bad := range []string{`"1000"`, `"0xg"`, `"0x123456789"`, `4096`} {
		if s.UnmarshalJSON([]byte(bad)) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
