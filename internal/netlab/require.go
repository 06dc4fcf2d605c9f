package netlab

import (
	"os"
	"testing"
)

// PrivilegedEnv is the environment variable that turns the skip of a
// privileged test without root into a failure.
const PrivilegedEnv = "NLB_PRIVILEGED"

// Require skips the test unless it runs as root. When NLB_PRIVILEGED=1 the
// test fails instead, so CI jobs meant to run privileged tests cannot pass
// by silently skipping them.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(PrivilegedEnv) == "1" {
		t.Fatal("netlab: test requires root (NLB_PRIVILEGED=1)")
	}
	t.Skip("requires root; run as root or with NLB_PRIVILEGED=1 to force")
}
