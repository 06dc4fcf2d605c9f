// Package benchtool runs and reads the standard load tools the benchmarks
// (bench/proxy, bench/xdp) measure with: wrk, iperf3, vegeta and strace,
// the backends they load (nginx `return 200`, HAProxy in TCP mode), and the
// machine's and a process's counters in /proc. Every parser takes the
// tool's own output as text, so it is tested on captured outputs
// (testdata/) without running anything. What a benchmark measures and
// reports stays in its own main.
package benchtool

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// ToolVersion returns the first line a tool prints for its version flag,
// whatever its exit status (wrk -v exits with a failure after printing
// it), or "NAME: unavailable".
func ToolVersion(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return name + ": unavailable"
	}
	return line
}

// Pick parses a comma-separated subset of all (a --tests or --impls flag),
// in all's order, without duplicates.
func Pick(flag, s string, all []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(all, f) {
			return nil, fmt.Errorf("%s: unknown %q (want some of %s)", flag, f, strings.Join(all, ","))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: nothing to measure", flag)
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(all, a) - slices.Index(all, b) })
	return out, nil
}

// Rotate returns xs rotated left by n: round n's order of the
// implementations, so that none always runs first.
func Rotate(xs []string, n int) []string {
	if len(xs) == 0 {
		return nil
	}
	n %= len(xs)
	return append(slices.Clone(xs[n:]), xs[:n]...)
}

// LastLines joins the last n lines of s with " | ", for error messages.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
