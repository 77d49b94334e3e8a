// Package testutil holds the helpers that vifsec's tests share: waiting
// for a condition, the check that a refused request changed nothing, a
// log buffer a process may write while the test reads, and the check that
// an integration test can run here.
//
// It must not be imported by production code: only by _test.go files and
// by test-helper packages (names ending in "test", such as vif/viftest).
// It imports nothing from this module, so any package's tests may use it.
package testutil
