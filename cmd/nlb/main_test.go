package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// runCLI runs the command line args as main does and returns what it
// wrote to stdout and stderr and its exit status.
func runCLI(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

// singleDashFlag matches a flag spelled -flag at the start of a help line.
var singleDashFlag = regexp.MustCompile(`(?m)^  -[a-z]`)

// TestHelp: help that was asked for goes to stdout and exits 0, for nlb
// and every command, however it is asked for; flags are listed as --flag.
func TestHelp(t *testing.T) {
	cases := [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}}
	for name := range commands() {
		cases = append(cases, []string{name, "-h"}, []string{name, "--help"}, []string{"help", name})
	}
	for _, args := range cases {
		stdout, stderr, code := runCLI(args...)
		if code != 0 || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
		}
		if !strings.HasPrefix(stdout, "Usage: nlb") {
			t.Errorf("%q: stdout does not start with the usage: %.200q", args, stdout)
		}
		if m := singleDashFlag.FindString(stdout); m != "" {
			t.Errorf("%q: a flag spelled with one dash (%q) in:\n%s", args, m, stdout)
		}
		if len(args) >= 2 && args[0] != "help" && args[0] != "version" && !strings.Contains(stdout, "\n  --") {
			t.Errorf("%q: no --flags listed:\n%s", args, stdout)
		}
	}
	// Hidden flags stay hidden; defaults are shown as flag.PrintDefaults does.
	stdout, _, _ := runCLI("proxy", "-h")
	if strings.Contains(stdout, "cpuprofile") {
		t.Errorf("nlb proxy -h shows the hidden --cpuprofile")
	}
	stdout, _, _ = runCLI("status", "-h")
	for _, want := range []string{"  --admin address\n", `(default "127.0.0.1:9647")`, "  --timeout duration\n", "(default 3s)", "  --json\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("nlb status -h lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "print the JSON as served (default") {
		t.Errorf("nlb status -h shows a zero default:\n%s", stdout)
	}
}

// TestVersion: --version and version print the version; version takes no
// arguments or flags.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		stdout, stderr, code := runCLI(args...)
		if stdout != "nlb "+version+"\n" || stderr != "" || code != 0 {
			t.Errorf("%q: %q %q exit %d, want %q", args, stdout, stderr, code, "nlb "+version+"\n")
		}
	}
	for _, args := range [][]string{{"version", "--bogus"}, {"version", "extra"}, {"--version", "extra"}} {
		stdout, stderr, code := runCLI(args...)
		if code == 0 || stdout != "" || !strings.HasPrefix(stderr, "nlb: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want an error", args, code, stdout, stderr)
		}
	}
}

// TestCommandLineMistakes: an unknown flag, a bad value, a missing required
// flag, an extra argument or an unknown command prints its error once and
// a hint, never the whole help, and exits 2.
func TestCommandLineMistakes(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		want, hint string
	}{
		{[]string{"proxy", "--bogus"}, "nlb: proxy: flag provided but not defined: --bogus\n", "Run 'nlb proxy -h' for usage.\n"},
		{[]string{"vrrp", "-bogus"}, "nlb: vrrp: flag provided but not defined: --bogus\n", "Run 'nlb vrrp -h' for usage.\n"},
		{[]string{"version", "--bogus"}, "nlb: version: flag provided but not defined: --bogus\n", "Run 'nlb version -h' for usage.\n"},
		{[]string{"status", "--timeout", "soon"}, `nlb: status: invalid value "soon" for flag --timeout: parse error` + "\n", "Run 'nlb status -h' for usage.\n"},
		{[]string{"status", "--json=maybe"}, `nlb: status: invalid boolean value "maybe" for --json: parse error` + "\n", "Run 'nlb status -h' for usage.\n"},
		{[]string{"status", "--admin"}, "nlb: status: flag needs an argument: --admin\n", "Run 'nlb status -h' for usage.\n"},
		{[]string{"status", "extra"}, `nlb: status: unexpected arguments ["extra"]` + "\n", "Run 'nlb status -h' for usage.\n"},
		{[]string{"vrrp"}, "nlb: vrrp: --config is required\n", "Run 'nlb vrrp -h' for usage.\n"},
		{[]string{"controller", "--check"}, "nlb: controller: --config is required\n", "Run 'nlb controller -h' for usage.\n"},
		{[]string{"controller", "--config", "x.yaml", "--xdp-mode", "fast"}, `nlb: controller: --xdp-mode must be auto, xdp-native, xdp-generic or tcx-ingress, got "fast"` + "\n", "Run 'nlb controller -h' for usage.\n"},
		{[]string{"controller", "--config", "x.yaml", "--xdp-flow-table-size", "0"}, "nlb: controller: --xdp-flow-table-size must be at least 1, got 0\n", "Run 'nlb controller -h' for usage.\n"},
		{[]string{"client", "--check"}, "nlb: client: --kubeconfig is required\n", "Run 'nlb client -h' for usage.\n"},
		{[]string{"kubeconfig", "--in", "x"}, "nlb: kubeconfig: --in and --out are required\n", "Run 'nlb kubeconfig -h' for usage.\n"},
		{[]string{"manifest"}, "nlb: manifest: want a role: controller or worker\n", "Run 'nlb manifest -h' for usage.\n"},
		{[]string{"manifest", "worker", "--bogus"}, "nlb: manifest worker: flag provided but not defined: --bogus\n", "Run 'nlb manifest worker -h' for usage.\n"},
		{[]string{"bogus"}, "nlb: unknown command \"bogus\"\n", "Run 'nlb -h' for usage.\n"},
		{[]string{"help", "bogus"}, "nlb: unknown command \"bogus\"\n", "Run 'nlb -h' for usage.\n"},
	} {
		stdout, stderr, code := runCLI(tc.args...)
		if code != 2 || stdout != "" || stderr != tc.want+tc.hint {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, %q", tc.args, code, stdout, stderr, tc.want+tc.hint)
		}
	}
	// Without a command: the command list (asked for by nobody: stderr).
	stdout, stderr, code := runCLI()
	if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "Usage: nlb") || strings.Count(stderr, "no command given") != 1 {
		t.Errorf("no arguments: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestExitCode: the status main exits with.
func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{errors.New("vrrp: boom"), 1, "nlb: vrrp: boom\n"},
		{&usageError{cmd: "proxy", err: errors.New("bad")}, 2, "nlb: proxy: bad\n"},
		{&usageError{cmd: "proxy", err: errors.New("bad"), hint: true}, 2, "nlb: proxy: bad\nRun 'nlb proxy -h' for usage.\n"},
	} {
		var b bytes.Buffer
		if code := exitCode(tc.err, &b); code != tc.code || b.String() != tc.out {
			t.Errorf("exitCode(%v) = %d, %q; want %d, %q", tc.err, code, b.String(), tc.code, tc.out)
		}
	}
}

// TestDashDash: the flag package's errors name flags as --flag.
func TestDashDash(t *testing.T) {
	for in, want := range map[string]string{
		"flag provided but not defined: -x":                   "flag provided but not defined: --x",
		"flag provided but not defined: --x":                  "flag provided but not defined: --x",
		"flag needs an argument: -admin":                      "flag needs an argument: --admin",
		`invalid value "a: -b" for flag -port: bad`:           `invalid value "a: -b" for flag --port: bad`,
		`invalid value "a\" for flag -y" for flag -port: bad`: `invalid value "a\" for flag -y" for flag --port: bad`,
		`invalid boolean value "x" for -check: parse error`:   `invalid boolean value "x" for --check: parse error`,
		"bad flag syntax: ---x":                               "bad flag syntax: ---x",
		"something else: -x":                                  "something else: -x",
	} {
		if got := dashDash(in); got != want {
			t.Errorf("dashDash(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestClientCheckSummary: nlb client --check prints a readable summary
// (listeners and the upstreams it starts with), not a Go struct.
func TestClientCheckSummary(t *testing.T) {
	c := newFakeCluster(t)
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"client", "--check", "--kubeconfig", c.kubeconfig, "--bind", "127.0.0.1",
		"--cache-file", ""}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	want := fmt.Sprintf("configuration ok: apiserver 127.0.0.1:7443, konnectivity 127.0.0.1:7132 (to port 8132)\n"+
		"  upstreams at start: %s\n", net.JoinHostPort(c.hosts[0], strconv.Itoa(c.port)))
	if out.String() != want {
		t.Errorf("nlb client --check printed\n%q, want\n%q", out.String(), want)
	}
}

// TestLogFlags: a bad --log-level or --log-format says what it wants, not
// slog's parser error.
func TestLogFlags(t *testing.T) {
	for _, tc := range []struct {
		lf   logFlags
		want string
	}{
		{logFlags{format: "json", level: "loud"}, `--log-level "loud": want debug, info, warn or error`},
		{logFlags{format: "xml", level: "info"}, `--log-format "xml": want json or text`},
	} {
		if _, err := tc.lf.logger(io.Discard); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.lf, err, tc.want)
		}
	}
	for _, lf := range []logFlags{{"json", "debug"}, {"text", "WARN"}, {"json", "error"}} {
		if _, err := lf.logger(io.Discard); err != nil {
			t.Errorf("%+v: %v", lf, err)
		}
	}
}
