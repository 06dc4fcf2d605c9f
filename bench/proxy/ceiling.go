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

// The ceiling implementations' sources: minimal forwarders in C (see
// their comments) and the header they share, built with the system's C
// compiler when the bench starts, so that no binary is committed.
var (
	//go:embed ceiling/forward.c
	forwardC []byte
	//go:embed ceiling/uring.c
	uringC []byte
	//go:embed ceiling/ceiling.h
	ceilingH []byte
)

// ceilingSource is impl's C source and the libraries it links.
func ceilingSource(impl string) ([]byte, []string, error) {
	switch impl {
	case implCeiling:
		return forwardC, []string{"-lpthread"}, nil
	case implCeilingUring:
		return uringC, []string{"-luring", "-lpthread"}, nil
	}
	return nil, nil, fmt.Errorf("%s is no ceiling implementation", impl)
}

// buildCeiling compiles impl's forwarder into dir and returns its path.
func buildCeiling(ctx context.Context, dir, impl string) (string, error) {
	code, libs, err := ceilingSource(impl)
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, impl+".c")
	bin := filepath.Join(dir, impl)
	if err := os.WriteFile(filepath.Join(dir, "ceiling.h"), ceilingH, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(src, code, 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	args := append([]string{"-O2", "-Wall", "-Werror", "-o", bin, src}, libs...)
	out, err := exec.CommandContext(ctx, "gcc", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building %s: %w: %s", impl, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}
