package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	n := FromEnv()
	if !n.Enabled() {
		t.Fatal("notifier with $NOTIFY_SOCKET set is not enabled")
	}
	if _, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		t.Fatal("FromEnv left $NOTIFY_SOCKET for children")
	}
	for _, tc := range []struct {
		name string
		send func() error
		want string
	}{
		{"ready", func() error { return n.Ready("serving") }, "READY=1\nSTATUS=serving"},
		{"reloading", n.Reloading, "RELOADING=1"},
		{"stopping", n.Stopping, "STOPPING=1"},
	} {
		if err := tc.send(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		buf := make([]byte, 256)
		k, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:k]); got != tc.want {
			t.Errorf("%s sent %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestWithoutManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n.Enabled() {
		t.Fatal("enabled without $NOTIFY_SOCKET")
	}
	if err := n.Ready("x"); err != nil {
		t.Fatalf("Ready without a manager: %v", err)
	}
	var zero *Notifier
	if err := zero.Stopping(); err != nil {
		t.Fatalf("nil notifier: %v", err)
	}
}
