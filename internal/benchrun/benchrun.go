// Package benchrun is the command plumbing of the benchmarks (bench/*) and,
// being under internal/, of the demo: main, common flags and checks, results
// files. What a benchmark measures and reports stays in its own main.
package benchrun

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Main runs a command with a context that SIGINT and SIGTERM cancel, and
// exits with Exit's status.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	os.Exit(Exit(name, err, interrupted, os.Stderr))
}

// Exit returns 0 when err is nil or help was asked for (-h), else prints
// "name: err" ("name: interrupted" after a signal) and returns 1.
func Exit(name string, err error, interrupted bool, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	} else if interrupted {
		err = errors.New("interrupted")
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}

// Parse parses a command line that has only flags.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// Binary returns the absolute path of the nlb binary at path, or an error
// saying to build it.
func Binary(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("nlb binary: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("nlb binary: %w (run `make build`)", err)
	}
	return abs, nil
}

// Options choose a benchmark's common flags and checks besides --nlb and
// --out, which every benchmark has.
type Options struct {
	Reps      int    // default of --reps (at least 1)
	RepsUsage string // help of --reps; "repetitions of every scenario" when empty
	Verbose   bool   // adds -v, which turns Logf on
	Root      string // when set, Setup fails with it unless run as root
	NeedNLB   bool   // Setup fails when --nlb does not exist
	// KubeAPIServer, when set, adds --apiserver and gets one when it is
	// empty: k8slab.APIServerBinary, passed in so that bench/proxy (its
	// own load generator) links no Kubernetes library.
	KubeAPIServer func(ctx context.Context) (string, error)
}

// Bench is one benchmark command: its flag set (a benchmark adds its own
// flags before Parse) and the common flags' values.
type Bench struct {
	Name      string // bench-NAME; results NAME.jsonl and NAME.md
	Flags     *flag.FlagSet
	NLB       string // --nlb, absolute after Setup
	Reps      int
	Out       string // results directory; empty writes no files
	APIServer string // --apiserver, filled in by Setup
	Verbose   bool

	opts           Options
	stdout, stderr io.Writer
	lines          bytes.Buffer // the JSON lines so far
}

// New returns a benchmark that prints to stdout and stderr, with the
// common flags o asks for.
func New(name string, stdout, stderr io.Writer, o Options) *Bench {
	b := &Bench{Name: name, Flags: flag.NewFlagSet("bench-"+name, flag.ContinueOnError), opts: o, stdout: stdout, stderr: stderr}
	fs := b.Flags
	fs.SetOutput(stderr)
	fs.StringVar(&b.NLB, "nlb", "bin/nlb", "nlb binary")
	fs.IntVar(&b.Reps, "reps", o.Reps, cmp.Or(o.RepsUsage, "repetitions of every scenario"))
	fs.StringVar(&b.Out, "out", "bench/results", "directory for "+name+".jsonl and "+name+".md (empty: none)")
	if o.KubeAPIServer != nil {
		fs.StringVar(&b.APIServer, "apiserver", "", "kube-apiserver binary (default: built from e2e/ into the user cache, or $NLB_KUBE_APISERVER)")
	}
	if o.Verbose {
		fs.BoolVar(&b.Verbose, "v", false, "log progress to stderr")
	}
	return b
}

// Parse parses the command line: flags only, --reps at least 1.
func (b *Bench) Parse(args []string) error {
	if err := Parse(b.Flags, args); err != nil || b.Reps >= 1 {
		return err
	}
	return errors.New("--reps must be at least 1")
}

// Setup checks root and the nlb binary and gets a kube-apiserver, as the
// options say, once the benchmark has checked its own flags.
func (b *Bench) Setup(ctx context.Context) (err error) {
	if b.opts.Root != "" && os.Geteuid() != 0 {
		return errors.New(b.opts.Root)
	}
	if b.opts.NeedNLB {
		b.NLB, err = Binary(b.NLB)
	} else {
		b.NLB, err = filepath.Abs(b.NLB)
	}
	if err != nil || b.opts.KubeAPIServer == nil || b.APIServer != "" {
		return err
	}
	fmt.Fprintf(b.stderr, "bench-%s: kube-apiserver from $NLB_KUBE_APISERVER, else built from e2e/ into the user cache (the first build takes minutes)\n", b.Name)
	b.APIServer, err = b.opts.KubeAPIServer(ctx)
	return err
}

// Logf prints a line with the time of day to stderr when -v is on.
func (b *Bench) Logf(format string, args ...any) {
	if b.Verbose {
		fmt.Fprintf(b.stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}
}

// Add prints v as one JSON line of results and keeps it for NAME.jsonl.
func (b *Bench) Add(v any) error {
	return json.NewEncoder(io.MultiWriter(b.stdout, &b.lines)).Encode(v)
}

// Finish prints table after a blank line and writes the JSON lines to
// NAME.jsonl and table to NAME.md in the results directory, if any.
func (b *Bench) Finish(table string) error {
	fmt.Fprint(b.stdout, "\n", table)
	return Save(b.Out, map[string][]byte{b.Name + ".jsonl": b.lines.Bytes(), b.Name + ".md": []byte(table)})
}

// Save writes files (by name) into dir, creating it; an empty dir writes
// nothing.
func Save(dir string, files map[string][]byte) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("results: %w", err)
		}
	}
	return nil
}

// Version returns the first line a command prints (a program's version),
// waiting at most 10 s, or "NAME: unavailable (ERROR)".
func Version(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return name + ": unavailable (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// Met is a goal's verdict in a results table.
func Met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// Setup is the part of a results file's first JSON line that every bench
// has: what was measured, where and when. A bench embeds it in its own
// record beside its parameters (the JSON fields come first, flattened).
type Setup struct {
	Bench     string   `json:"bench"`
	Date      string   `json:"date"`
	NLB       string   `json:"nlb"`
	Commit    string   `json:"commit"`
	Kernel    string   `json:"kernel"`
	Cores     int      `json:"cores"`
	Tools     []string `json:"tools"`
	Rounds    int      `json:"rounds"`
	DurationS float64  `json:"duration_s"`
}

// NewSetup reads the date, nlb's version (nlb is the binary), the git
// commit, the kernel and the CPU count; tools are the peers' versions.
func NewSetup(ctx context.Context, bench, nlb string, rounds int, duration time.Duration, tools []string) Setup {
	return Setup{
		Bench: bench, Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		NLB: Version(ctx, nlb, "version"), Commit: Version(ctx, "git", "describe", "--always", "--dirty"),
		Kernel: Version(ctx, "uname", "-r"), Cores: runtime.NumCPU(),
		Tools: tools, Rounds: rounds, DurationS: duration.Seconds(),
	}
}

// Measured is the report's note on what was measured, without a final
// period.
func (s Setup) Measured() string {
	return fmt.Sprintf("Measured %s: %s (%s), kernel %s, %d cores; %s", s.Date, s.NLB, s.Commit, s.Kernel, s.Cores, strings.Join(s.Tools, "; "))
}

// TableHead writes a Markdown table's header row and its alignment row:
// the lead columns left-aligned, the numeric ones right-aligned.
func TableHead(b *strings.Builder, lead, numeric []string) {
	b.WriteString("|")
	for _, c := range slices.Concat(lead, numeric) {
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n|")
	for range lead {
		b.WriteString("---|")
	}
	for range numeric {
		b.WriteString("--:|")
	}
	b.WriteString("\n")
}
