package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// forwardC is the ceiling implementation's source: a minimal epoll
// forwarder in C (see its comment). It is built with the system's C
// compiler when the bench starts, so that no binary is committed.
//
//go:embed ceiling/forward.c
var forwardC []byte

// buildCeiling compiles the ceiling forwarder into dir and returns its path.
func buildCeiling(ctx context.Context, dir string) (string, error) {
	src := filepath.Join(dir, "forward.c")
	bin := filepath.Join(dir, "forward")
	if err := os.WriteFile(src, forwardC, 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "gcc", "-O2", "-Wall", "-Werror", "-o", bin, src, "-lpthread").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the ceiling forwarder: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}
