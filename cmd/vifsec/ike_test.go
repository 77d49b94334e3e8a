package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReadPSKFromStdin(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{name: "one line", in: "s3cret-key\n", want: "s3cret-key"},
		{name: "crlf", in: "s3cret-key\r\n", want: "s3cret-key"},
		{name: "no newline", in: "s3cret-key", want: "s3cret-key"},
		{name: "only the first line", in: "first\nsecond\n", want: "first"},
		{name: "hex kept as written", in: "0x0102\n", want: "0x0102"},
		{name: "empty", in: "", err: "none on stdin"},
		{name: "empty line", in: "\n", err: "none on stdin"},
		{name: "too long", in: strings.Repeat("k", maxPSKLine+1) + "\n", err: "longer than"},
		{name: "longest", in: strings.Repeat("k", maxPSKLine) + "\n", want: strings.Repeat("k", maxPSKLine)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c := &cli{stdin: strings.NewReader(tt.in), stderr: &stderr}
			got, err := c.readPSK("t1", "p1")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("readPSK = %q, %v; want %q", got, err, tt.want)
			}
			if stderr.Len() != 0 {
				t.Errorf("prompted on a pipe: %q", stderr.String())
			}
		})
	}
}

func TestReadPEM(t *testing.T) {
	c := &cli{stdin: strings.NewReader(" \n\t"), stderr: &bytes.Buffer{}}
	if _, err := c.readPEM("the CRL"); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("blank stdin: %v", err)
	}
	c.stdin = strings.NewReader(strings.Repeat("x", maxStdin+1))
	if _, err := c.readPEM("the CRL"); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("huge stdin: %v", err)
	}
	c.stdin = strings.NewReader("-----BEGIN X-----\n")
	if got, err := c.readPEM("the CRL"); err != nil || got != "-----BEGIN X-----\n" {
		t.Errorf("readPEM = %q, %v", got, err)
	}
}
