package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond until it reports true, and fails t if that has not
// happened within timeout, naming what it waited for and cond's last word
// (why it did not hold yet; may be empty). Polling starts at 1 ms and backs
// off to 50 ms, so conditions that hold soon are seen soon.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() (ok bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if last == "" {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// WaitUntil is WaitFor for a condition that has nothing to say while it
// does not hold.
func WaitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	WaitFor(t, what, timeout, func() (bool, string) { return cond(), "" })
}

// WaitNoError is WaitFor for a check that returns why it does not hold
// yet as an error; the last error is in the failure.
func WaitNoError(t testing.TB, what string, timeout time.Duration, check func() error) {
	t.Helper()
	WaitFor(t, what, timeout, func() (bool, string) {
		if err := check(); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// Refused runs do, a request that must be refused, and returns its error
// for the caller to check. It fails t if do returned nil, or if look,
// which returns all that the request could have changed (memory, the
// store, a generation), returns something else after do than before
// (reflect.DeepEqual): a refused request changes nothing.
func Refused[V any](t testing.TB, look func() V, do func() error) error {
	t.Helper()
	before := look()
	err := do()
	if err == nil {
		t.Errorf("accepted, want refused")
	}
	if after := look(); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused request changed the state:\nbefore %+v\nafter  %+v", before, after)
	}
	return err
}

// LogBuffer is an io.Writer that keeps what is written, for a logger or a
// child process writing while the test reads. Its methods may be called
// concurrently; the zero value is ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p; it never fails.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// CannotRun ends t because it cannot run here, saying why: it skips t,
// except with CI=true, where it fails t (integration tests never skip in
// CI, where make deps installs what they need and they run as root).
func CannotRun(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run: %s (CI=true: integration tests must run, not skip)", why)
	}
	t.Skip(why)
}

// NeedRoot ends t through CannotRun unless the test runs as root and
// every one of tools is on PATH; the reason names all that is missing.
func NeedRoot(t testing.TB, tools ...string) {
	t.Helper()
	if why := missing(os.Geteuid() == 0, tools); why != "" {
		CannotRun(t, why)
	}
}

// missing says what a test lacks, or "" when it has it all.
func missing(root bool, tools []string) string {
	var lack []string
	if !root {
		lack = append(lack, "root (network namespaces, devices, raw sockets)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			lack = append(lack, tool+" on PATH")
		}
	}
	if len(lack) == 0 {
		return ""
	}
	return "needs " + strings.Join(lack, ", ") + " (run as root after make deps)"
}
