package ikeconf

import (
	"strings"
	"testing"
	"time"
)

func TestParseTimerValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30s", 30 * time.Second, false},
		{"5m", 5 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"3600", time.Hour, false},
		{" 10s ", 10 * time.Second, false},
		{"off", 0, false},
		{"0", 0, false},
		{"1.5s", 1500 * time.Millisecond, false},
		{"-5s", 0, true},
		{"1d", 0, true},
		{"", 0, true},
		{"fast", 0, true},
		{"99999999999", 0, true},
	} {
		got, err := ParseTimerValue(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseTimerValue(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "30s") {
			t.Errorf("ParseTimerValue(%q): message %q does not say what is accepted", tc.in, err)
		}
	}
	for d, want := range map[time.Duration]string{
		4 * time.Hour: "4h", time.Hour + 30*time.Minute: "1h30m", 30 * time.Second: "30s", 0: "off",
		90 * time.Second: "1m30s", 2*time.Hour + 30*time.Second: "2h0m30s", 10 * time.Minute: "10m",
	} {
		if got := FormatTimer(d); got != want {
			t.Errorf("FormatTimer(%v) = %q, want %q", d, got, want)
		}
		if back, err := ParseTimerValue(FormatTimer(d)); err != nil || back != d {
			t.Errorf("FormatTimer(%v) does not parse back: %v, %v", d, back, err)
		}
	}
	for _, s := range []string{"clear", "CLEAR", "restart", ""} {
		a, err := ParseDPDAction(s)
		if err != nil || a.String() != strings.ToLower(s) {
			t.Errorf("ParseDPDAction(%q) = %v, %v", s, a, err)
		}
	}
	if _, err := ParseDPDAction("hold"); err == nil || !strings.Contains(err.Error(), "clear") {
		t.Errorf("ParseDPDAction(hold) = %v", err)
	}
}
