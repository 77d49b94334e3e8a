package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeT records how a helper ended a test, as testing.T would: Fatal and
// Skip stop the calling goroutine.
type fakeT struct {
	testing.TB
	failed, skipped string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeT) Errorf(format string, args ...any) {
	f.failed += fmt.Sprintf(format, args...) + "\n"
}
func (f *fakeT) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}

// run calls fn with a fakeT on its own goroutine and returns the fakeT.
func run(fn func(t testing.TB)) *fakeT {
	f := &fakeT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	n := 0
	f := run(func(t testing.TB) {
		WaitFor(t, "third call", time.Second, func() (bool, string) { n++; return n == 3, "not yet" })
	})
	if f.failed != "" || n != 3 {
		t.Fatalf("failed %q after %d calls; want success on call 3", f.failed, n)
	}
}

func TestWaitForTimesOut(t *testing.T) {
	f := run(func(t testing.TB) {
		WaitFor(t, "the moon", 20*time.Millisecond, func() (bool, string) { return false, "still cheese" })
	})
	if !strings.Contains(f.failed, "the moon") || !strings.Contains(f.failed, "still cheese") {
		t.Fatalf("failure %q; want it to name what it waited for and the last word", f.failed)
	}
	f = run(func(t testing.TB) { WaitUntil(t, "never", 5*time.Millisecond, func() bool { return false }) })
	if !strings.Contains(f.failed, "never") || strings.Contains(f.failed, "last:") {
		t.Fatalf("WaitUntil failure %q; want it to name what it waited for only", f.failed)
	}
	f = run(func(t testing.TB) {
		WaitNoError(t, "no error", 5*time.Millisecond, func() error { return errors.New("boom") })
	})
	if !strings.Contains(f.failed, "boom") {
		t.Fatalf("WaitNoError failure %q; want the last error", f.failed)
	}
}

func TestRefused(t *testing.T) {
	state := 1
	look := func() map[string]int { return map[string]int{"state": state} }
	refuse := errors.New("refused")
	var got error
	f := run(func(t testing.TB) { got = Refused(t, look, func() error { return refuse }) })
	if f.failed != "" || got != refuse {
		t.Errorf("a refusal that changed nothing: failed %q, returned %v; want a pass returning the refusal", f.failed, got)
	}
	f = run(func(t testing.TB) { Refused(t, look, func() error { return nil }) })
	if !strings.Contains(f.failed, "accepted") || strings.Contains(f.failed, "changed") {
		t.Errorf("an accepted request that changed nothing: failed %q; want it to say accepted, only", f.failed)
	}
	f = run(func(t testing.TB) { Refused(t, look, func() error { state++; return refuse }) })
	if !strings.Contains(f.failed, "changed the state") || !strings.Contains(f.failed, "state:1") || !strings.Contains(f.failed, "state:2") {
		t.Errorf("a refusal that changed the state: failed %q; want it to say so, with before and after", f.failed)
	}
}

func TestLogBufferConcurrent(t *testing.T) {
	var l LogBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				l.Write([]byte("ab"))
				_ = l.String()
			}
		}()
	}
	wg.Wait()
	if got := len(l.String()); got != 8*100*2 {
		t.Fatalf("%d bytes kept, want %d", got, 8*100*2)
	}
}

func TestCannotRunFailsInCI(t *testing.T) {
	t.Setenv("CI", "true")
	f := run(func(t testing.TB) { CannotRun(t, "no tshark") })
	if f.skipped != "" || !strings.Contains(f.failed, "no tshark") {
		t.Fatalf("with CI=true: skipped %q, failed %q; want a failure naming the reason", f.skipped, f.failed)
	}
	t.Setenv("CI", "")
	f = run(func(t testing.TB) { CannotRun(t, "no tshark") })
	if f.failed != "" || f.skipped != "no tshark" {
		t.Fatalf("without CI: skipped %q, failed %q; want a skip with the reason", f.skipped, f.failed)
	}
}

func TestMissing(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if why := missing(true, []string{self}); why != "" {
		t.Errorf("root with every tool: %q, want nothing missing", why)
	}
	why := missing(false, []string{self, "/nonexistent/vifsec-no-such-tool"})
	if !strings.Contains(why, "root") || !strings.Contains(why, "vifsec-no-such-tool") || strings.Contains(why, self) {
		t.Errorf("missing = %q; want root and the absent tool named, not the present one", why)
	}
}

// TestImportedOnlyByTests: no production package imports testutil; test
// files may, and so may test-helper packages (named ...test).
func TestImportedOnlyByTests(t *testing.T) {
	if testing.Short() {
		t.Skip("lists every package of the module")
	}
	const self = "github.com/vifsec/vifsec/internal/testutil"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{.Name}} {{join .Imports " "}}`, "github.com/vifsec/vifsec/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasSuffix(f[1], "test") {
			continue
		}
		for _, imp := range f[2:] {
			if imp == self {
				t.Errorf("production package %s imports %s", f[0], self)
			}
		}
	}
}
