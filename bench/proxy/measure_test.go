package main

import (
	"os/exec"
	"syscall"
	"testing"
)

// strace ends by SIGINT after writing its summary: that is its success.
func TestInterrupted(t *testing.T) {
	c := exec.Command("sleep", "10")
	if err := c.Start(); err != nil {
		t.Skip(err)
	}
	_ = c.Process.Signal(syscall.SIGINT)
	if err := c.Wait(); !interrupted(err) {
		t.Errorf("SIGINT: %v not interrupted", err)
	}
	c = exec.Command("sleep", "10")
	if err := c.Start(); err != nil {
		t.Skip(err)
	}
	_ = c.Process.Signal(syscall.SIGTERM)
	if err := c.Wait(); interrupted(err) {
		t.Errorf("SIGTERM: %v interrupted", err)
	}
	if err := exec.Command("false").Run(); interrupted(err) || interrupted(nil) {
		t.Error("exit 1 or nil interrupted")
	}
}
