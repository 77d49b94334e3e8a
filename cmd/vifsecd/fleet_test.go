package main

import (
	"io"
	"strings"
	"testing"
)

func TestFleetFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		host    string
	}{
		{name: "embedded store", args: nil},
		{name: "bolt", args: []string{"--store", "bolt"}},
		{name: "etcd", args: []string{"--store", "etcd://127.0.0.1:2379,[2001:db8::1]:2379/vifsec", "--host-id", "hv1", "--kek-file", "/k"}, host: "hv1"},
		{name: "default host id", args: []string{"--store", "etcd://127.0.0.1:2379/x", "--kek-file", "/k"}},
		{name: "no kek", args: []string{"--store", "etcd://127.0.0.1:2379/x", "--host-id", "a"}, wantErr: "--kek-file is required"},
		{name: "bad url", args: []string{"--store", "http://127.0.0.1:2379", "--kek-file", "/k"}, wantErr: "not an etcd URL"},
		{name: "bad endpoint", args: []string{"--store", "etcd://127.0.0.1/x", "--kek-file", "/k"}, wantErr: "not HOST:PORT"},
		{name: "bad host id", args: []string{"--store", "etcd://127.0.0.1:2379/x", "--kek-file", "/k", "--host-id", "a/b"}, wantErr: "--host-id"},
		{name: "fleet flag without fleet", args: []string{"--kek-file", "/k"}, wantErr: "only used with --store etcd"},
		{name: "user without password", args: []string{"--store", "etcd://127.0.0.1:2379/x", "--kek-file", "/k", "--etcd-user", "u"}, wantErr: "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.host != "" && o.fleet.hostID != tt.host {
				t.Errorf("host id %q, want %q", o.fleet.hostID, tt.host)
			}
			if o.fleet.enabled() && o.fleet.hostID == "" {
				t.Error("no host id")
			}
		})
	}
}
