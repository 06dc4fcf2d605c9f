package benchrun

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/internal/k8slab"
)

func TestExit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		interrupted bool
		code        int
		stderr      string
	}{
		{"ok", nil, false, 0, ""},
		{"help", flag.ErrHelp, false, 0, ""},
		{"wrapped help", errors.Join(flag.ErrHelp), false, 0, ""},
		{"error", errors.New("--reps must be at least 1"), false, 1, "bench-x: --reps must be at least 1\n"},
		{"interrupted", context.Canceled, true, 1, "bench-x: interrupted\n"},
		{"interrupted, other error", errors.New("signal: killed"), true, 1, "bench-x: interrupted\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := Exit("bench-x", tc.err, tc.interrupted, &stderr); got != tc.code {
				t.Errorf("Exit = %d, want %d", got, tc.code)
			}
			if stderr.String() != tc.stderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tc.stderr)
			}
		})
	}
}

// common are the common flags' values of a Bench.
type common struct {
	NLB, Out, APIServer string
	Reps                int
	Verbose             bool
}

func TestParse(t *testing.T) {
	noAPI := func(context.Context) (string, error) { return "", errors.New("not called") }
	chaos := Options{Reps: 3, KubeAPIServer: noAPI, Verbose: true}
	failover := Options{Reps: 5, RepsUsage: "repetitions of every combination"}
	for _, tc := range []struct {
		name string
		opts Options
		args []string
		err  string // "" for success
		want common // the common flags after a successful Parse
	}{
		{"defaults", chaos, nil, "", common{NLB: "bin/nlb", Reps: 3, Out: "bench/results"}},
		{"every common flag", chaos, []string{"--nlb", "x/nlb", "--reps", "1", "--out", "", "--apiserver", "/k", "-v"}, "",
			common{NLB: "x/nlb", Reps: 1, Out: "", APIServer: "/k", Verbose: true}},
		{"failover's", failover, []string{"--out", "/tmp/r"}, "", common{NLB: "bin/nlb", Reps: 5, Out: "/tmp/r"}},
		{"arguments", chaos, []string{"--reps", "2", "kill"}, `unexpected arguments ["kill"]`, common{}},
		{"no repetition", chaos, []string{"--reps", "0"}, "--reps must be at least 1", common{}},
		{"negative", failover, []string{"--reps", "-3"}, "--reps must be at least 1", common{}},
		{"no --apiserver", failover, []string{"--apiserver", "/k"}, "flag provided but not defined: -apiserver", common{}},
		{"no -v", failover, []string{"-v"}, "flag provided but not defined: -v", common{}},
		{"not a number", chaos, []string{"--reps", "x"}, `invalid value "x" for flag -reps`, common{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			b := New("x", io.Discard, &stderr, tc.opts)
			err := b.Parse(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse(%q) = %v, want %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.args, err)
			}
			got := common{NLB: b.NLB, Reps: b.Reps, Out: b.Out, APIServer: b.APIServer, Verbose: b.Verbose}
			if got != tc.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.args, got, tc.want)
			}
		})
	}
}

// TestParseFlagSet: a command with its own flag set (bench/proxy) gets
// the same check of arguments.
func TestParseFlagSet(t *testing.T) {
	fs := flag.NewFlagSet("bench-proxy", flag.ContinueOnError)
	runs := fs.Int("runs", 5, "")
	if err := Parse(fs, []string{"--runs", "1"}); err != nil || *runs != 1 {
		t.Errorf("Parse = %v, runs %d", err, *runs)
	}
	if err := Parse(fs, []string{"--runs", "1", "x"}); err == nil || err.Error() != `unexpected arguments ["x"]` {
		t.Errorf("Parse with an argument = %v", err)
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	b := New("failover", io.Discard, &stderr, Options{Reps: 5, RepsUsage: "repetitions of every combination"})
	b.Flags.String("impls", "nlb,keepalived", "implementations to measure")
	if err := b.Parse([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
	help := stderr.String()
	for _, want := range []string{
		"Usage of bench-failover:",
		"directory for failover.jsonl and failover.md (empty: none) (default \"bench/results\")",
		"repetitions of every combination (default 5)",
		"-impls string",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	for _, unwanted := range []string{"-apiserver", "-v\t"} {
		if strings.Contains(help, unwanted) {
			t.Errorf("help has %q:\n%s", unwanted, help)
		}
	}

	stderr.Reset()
	b = New("chaos", io.Discard, &stderr, Options{Reps: 3, KubeAPIServer: k8slab.APIServerBinary, Verbose: true})
	_ = b.Parse([]string{"--help"})
	for _, want := range []string{
		"directory for chaos.jsonl and chaos.md (empty: none)",
		"repetitions of every scenario (default 3)",
		"or $" + k8slab.APIServerEnv + ")",
		"log progress to stderr",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestSetup(t *testing.T) {
	dir := t.TempDir()
	nlb := filepath.Join(dir, "nlb")
	if err := os.WriteFile(nlb, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var asked int
	api := func(context.Context) (string, error) {
		asked++
		return "/built/kube-apiserver", nil
	}

	var stderr bytes.Buffer
	b := New("client", io.Discard, &stderr, Options{Reps: 3, NeedNLB: true, KubeAPIServer: api})
	if err := b.Parse([]string{"--nlb", nlb}); err != nil {
		t.Fatal(err)
	}
	if err := b.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.NLB != nlb || b.APIServer != "/built/kube-apiserver" || asked != 1 {
		t.Errorf("after Setup: nlb %q, apiserver %q, asked %d times", b.NLB, b.APIServer, asked)
	}
	if want := "bench-client: kube-apiserver from $NLB_KUBE_APISERVER, else built from e2e/ into the user cache (the first build takes minutes)\n"; stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}

	// --apiserver given: nothing is built.
	b = New("client", io.Discard, &stderr, Options{Reps: 3, NeedNLB: true, KubeAPIServer: api})
	if err := b.Parse([]string{"--nlb", nlb, "--apiserver", "/mine"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Setup(context.Background()); err != nil || b.APIServer != "/mine" || asked != 1 {
		t.Errorf("Setup with --apiserver: %v, apiserver %q, asked %d times", err, b.APIServer, asked)
	}

	// A missing binary fails only when the benchmark needs it.
	missing := filepath.Join(dir, "none")
	b = New("client", io.Discard, &stderr, Options{Reps: 1, NeedNLB: true})
	if err := b.Parse([]string{"--nlb", missing}); err != nil {
		t.Fatal(err)
	}
	if err := b.Setup(context.Background()); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("Setup with a missing binary = %v, want an error saying to build it", err)
	}
	b = New("chaos", io.Discard, &stderr, Options{Reps: 1})
	if err := b.Parse([]string{"--nlb", missing}); err != nil {
		t.Fatal(err)
	}
	if err := b.Setup(context.Background()); err != nil || b.NLB != missing {
		t.Errorf("Setup without NeedNLB = %v, nlb %q", err, b.NLB)
	}

	// Root: the check runs only when asked for.
	b = New("failover", io.Discard, &stderr, Options{Reps: 1, Root: "needs root: it builds network namespaces"})
	if err := b.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := b.Setup(context.Background())
	if os.Geteuid() == 0 && err != nil || os.Geteuid() != 0 && (err == nil || err.Error() != "needs root: it builds network namespaces") {
		t.Errorf("Setup as uid %d = %v", os.Geteuid(), err)
	}
}

func TestBinary(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("nlb", nil, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Binary("nlb")
	if err != nil || got != filepath.Join(dir, "nlb") {
		t.Errorf("Binary(nlb) = %q, %v, want %q", got, err, filepath.Join(dir, "nlb"))
	}
	if _, err := Binary("bin/nlb"); err == nil || !strings.Contains(err.Error(), "run `make build`") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Binary(bin/nlb) = %v, want a not-exist error saying to build it", err)
	}
}

// line is a JSON line as the benchmarks print them.
type line struct {
	Impl     string  `json:"impl"`
	Scenario string  `json:"scenario"`
	Rep      int     `json:"rep,omitempty"`
	OutageMS float64 `json:"outage_ms"`
	Stat     string  `json:"stat,omitempty"`
}

func TestResults(t *testing.T) {
	out := filepath.Join(t.TempDir(), "results", "new")
	var stderr, stdout bytes.Buffer
	b := New("chaos", &stdout, &stderr, Options{Reps: 3})
	if err := b.Parse([]string{"--out", out}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []line{
		{Impl: "nlb", Scenario: "kill", Rep: 1, OutageMS: 3212.5},
		{Impl: "nlb", Scenario: "kill", Rep: 2, OutageMS: 3240},
		{Impl: "nlb", Scenario: "kill", OutageMS: 3226.25, Stat: "median"},
	} {
		if err := b.Add(l); err != nil {
			t.Fatal(err)
		}
	}
	const golden = `{"impl":"nlb","scenario":"kill","rep":1,"outage_ms":3212.5}
{"impl":"nlb","scenario":"kill","rep":2,"outage_ms":3240}
{"impl":"nlb","scenario":"kill","outage_ms":3226.25,"stat":"median"}
`
	if stdout.String() != golden {
		t.Errorf("printed:\n%s\nwant:\n%s", stdout.String(), golden)
	}
	const table = "| scenario | impl | runs | outage_ms |\n|---|---|---|---|\n| kill | nlb | 2 | 3226 (3212-3240) |\n\ngoal: " + "met" + "\n"
	if err := b.Finish(table); err != nil {
		t.Fatal(err)
	}
	if want := golden + "\n" + table; stdout.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", stdout.String(), want)
	}
	for name, want := range map[string]string{"chaos.jsonl": golden, "chaos.md": table} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr: %q", stderr.String())
	}
}

func TestSaveNowhere(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	var stdout bytes.Buffer
	b := New("client", &stdout, &stdout, Options{Reps: 1})
	if err := b.Parse([]string{"--out", ""}); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(line{Impl: "nlb"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Finish("| table |\n"); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("--out '' wrote %v (%v)", ents, err)
	}
	// bench/proxy's three files.
	if err := Save("r", map[string][]byte{"proxy.jsonl": []byte("{}\n"), "proxy.svg": []byte("<svg/>")}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join("r", "proxy.svg")); err != nil || string(b) != "<svg/>" {
		t.Errorf("proxy.svg: %q, %v", b, err)
	}
	if err := Save(filepath.Join(dir, "f"), map[string][]byte{"x/y": nil}); err == nil {
		t.Error("Save into a missing subdirectory succeeded")
	}
}

func TestLogf(t *testing.T) {
	var stderr bytes.Buffer
	b := New("chaos", io.Discard, &stderr, Options{Reps: 1, Verbose: true})
	if err := b.Parse(nil); err != nil {
		t.Fatal(err)
	}
	b.Logf("quiet %d", 1)
	if stderr.Len() > 0 {
		t.Errorf("Logf without -v printed %q", stderr.String())
	}
	if err := b.Parse([]string{"-v"}); err != nil {
		t.Fatal(err)
	}
	b.Logf("rep %d on %s", 2, "h1")
	if s := stderr.String(); !strings.HasSuffix(s, " rep 2 on h1\n") || len(s) != len("15:04:05.000 rep 2 on h1\n") {
		t.Errorf("Logf printed %q", s)
	}
}

func TestVersion(t *testing.T) {
	if v := Version(context.Background(), "sh", "-c", "printf '  HAProxy version 2.6.12\\nStatus: long-term\\n'"); v != "HAProxy version 2.6.12" {
		t.Errorf("Version = %q", v)
	}
	if v := Version(context.Background(), "sh", "-c", "echo broken; exit 3"); v != "sh: unavailable (exit status 3)" {
		t.Errorf("Version of a failing command = %q", v)
	}
	missing := filepath.Join(t.TempDir(), "none")
	if v := Version(context.Background(), missing); !strings.HasPrefix(v, missing+": unavailable (") {
		t.Errorf("Version of a missing command = %q", v)
	}
}

func TestMet(t *testing.T) {
	if Met(true) != "met" || Met(false) != "**not met**" {
		t.Errorf("Met: %q, %q", Met(true), Met(false))
	}
}

func TestTableHead(t *testing.T) {
	var b strings.Builder
	TableHead(&b, []string{"metric", "unit"}, []string{"a", "b"})
	if want := "| metric | unit | a | b |\n|---|---|--:|--:|\n"; b.String() != want {
		t.Errorf("TableHead wrote %q, want %q", b.String(), want)
	}
}

func TestSetupMeasured(t *testing.T) {
	s := Setup{Date: "2026-12-07 12:00 UTC", NLB: "nlb abc", Commit: "abc", Kernel: "6.18", Cores: 2, Tools: []string{"wrk 4", "iperf 3"}}
	if got, want := s.Measured(), "Measured 2026-12-07 12:00 UTC: nlb abc (abc), kernel 6.18, 2 cores; wrk 4; iperf 3"; got != want {
		t.Errorf("Measured() = %q, want %q", got, want)
	}
}
