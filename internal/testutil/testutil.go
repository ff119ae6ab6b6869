// Package testutil holds helpers shared by integration tests.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// peer is a failure, not a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// MissingPeer fails the test under CI and skips it otherwise.
func MissingPeer(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("peer missing (CI=true, so this fails): "+format, args...)
	}
	t.Skipf("peer missing (skipped outside CI): "+format, args...)
}

// RequireBinary returns the path of an executable needed by a test: an
// absolute path is checked as is, a bare name is looked up in PATH.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	MissingPeer(t, "%s not found (install the Debian package that ships it; .ci/run does)", name)
	return ""
}
