// Package benchrun is the command plumbing the lab commands share: the
// benchmarks (bench/chaos, bench/client, bench/failover, bench/proxy) and
// the demo (internal/demo). It runs a command under SIGINT/SIGTERM
// (Main), registers and checks the flags every benchmark has (New, Parse),
// prepares what the labs need (Setup: root, the nlb binary, a
// kube-apiserver), prints and keeps the JSON lines of the
// results and writes them with the Markdown table into the results
// directory (Results, Save).
//
// It lives under internal/ rather than bench/internal so that the demo,
// which has the same main, root check and binary check, uses it too.
// What a benchmark measures and how it reports it stays in its own main.
package benchrun

import (
	"bytes"
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
	"strings"
	"syscall"
	"time"
)

// Main runs a lab command and exits with its status. run gets a context
// that SIGINT and SIGTERM cancel, the arguments after the command's name,
// stdout and stderr. See Exit for the status and what is printed.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	os.Exit(Exit(name, err, interrupted, os.Stderr))
}

// Exit returns the exit status of a command that ended with err, and
// prints why it failed: 0 on success and when help was asked for (-h;
// the flag set has printed it), otherwise 1 with "name: err" on stderr, or
// "name: interrupted" when a signal ended the run (what fails then is the
// interruption, not the error it caused).
func Exit(name string, err error, interrupted bool, stderr io.Writer) int {
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case interrupted:
		fmt.Fprintf(stderr, "%s: interrupted\n", name)
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	return 1
}

// RequireRoot returns an error with msg unless the process runs as root.
func RequireRoot(msg string) error {
	if os.Geteuid() != 0 {
		return errors.New(msg)
	}
	return nil
}

// Binary returns the absolute path of the nlb binary at path, or an error
// that says to build it when there is none.
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

// apiServerEnv is k8slab.APIServerEnv, for the help of --apiserver.
const apiServerEnv = "NLB_KUBE_APISERVER"

// Options are a benchmark's choices among the common flags and checks.
// Every benchmark has --nlb (default bin/nlb) and a results directory
// (default bench/results).
type Options struct {
	// NLBUsage is the help of --nlb; "nlb binary" when empty.
	NLBUsage string
	// Reps is the default of the repetitions flag; 0 means the
	// benchmark has none.
	Reps int
	// RepsFlag names the repetitions flag ("reps" when empty) and
	// RepsUsage is its help ("repetitions of every scenario" when empty).
	RepsFlag, RepsUsage string
	// MaxReps, when not 0, is the most repetitions Parse accepts.
	MaxReps int
	// OutFlag names the results directory flag ("out" when empty).
	OutFlag string
	// ExtraFiles names the result files besides NAME.jsonl and NAME.md,
	// for the help of the results flag.
	ExtraFiles []string
	// KubeAPIServer, when set, adds --apiserver (a kube-apiserver
	// binary); when the flag is empty, Setup gets one from KubeAPIServer,
	// which tells note where it comes from. Benchmarks on real API
	// servers pass k8slab.APIServerBinary: this package does not import
	// k8slab, so that a benchmark without API servers (bench/proxy, which
	// re-executes itself as its load generator) links no Kubernetes
	// library.
	KubeAPIServer func(ctx context.Context, note func(msg string)) (string, error)
	// Verbose adds -v, which turns Logf on.
	Verbose bool
	// Root, when not empty, is the error Setup returns unless the
	// process runs as root.
	Root string
	// NeedNLB makes Setup fail when the --nlb binary does not exist (a
	// benchmark that can measure the other implementations alone leaves
	// it false).
	NeedNLB bool
}

// Bench is one benchmark command: its flag set and, after Parse and
// Setup, the common flags' values.
type Bench struct {
	// Name names the benchmark: the command is bench-NAME and its
	// results are NAME.jsonl and NAME.md.
	Name string
	// Flags is the flag set; a benchmark adds its own flags to it before
	// Parse.
	Flags *flag.FlagSet
	// NLB is --nlb; Setup makes it absolute.
	NLB string
	// Reps is the repetitions flag's value.
	Reps int
	// Out is the results directory; empty writes no files.
	Out string
	// APIServer is --apiserver; Setup fills it in when it is empty.
	APIServer string
	// Verbose is -v.
	Verbose bool

	opts   Options
	stderr io.Writer
}

// New returns a benchmark whose flag set reports to stderr and has the
// common flags o asks for.
func New(name string, stderr io.Writer, o Options) *Bench {
	b := &Bench{Name: name, Flags: flag.NewFlagSet("bench-"+name, flag.ContinueOnError), opts: o, stderr: stderr}
	fs := b.Flags
	fs.SetOutput(stderr)
	fs.StringVar(&b.NLB, "nlb", "bin/nlb", or(o.NLBUsage, "nlb binary"))
	if o.Reps > 0 {
		fs.IntVar(&b.Reps, or(o.RepsFlag, "reps"), o.Reps, or(o.RepsUsage, "repetitions of every scenario"))
	}
	files := append([]string{name + ".jsonl", name + ".md"}, o.ExtraFiles...)
	list := strings.Join(files, " and ")
	if len(files) > 2 {
		list = strings.Join(files[:len(files)-1], ", ") + " and " + files[len(files)-1]
	}
	fs.StringVar(&b.Out, or(o.OutFlag, "out"), "bench/results", "directory for "+list+" (empty: none)")
	if o.KubeAPIServer != nil {
		fs.StringVar(&b.APIServer, "apiserver", "", "kube-apiserver binary (default: built from e2e/ into the user cache, or $"+apiServerEnv+")")
	}
	if o.Verbose {
		fs.BoolVar(&b.Verbose, "v", false, "log progress to stderr")
	}
	return b
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Parse parses the command line and checks the common flags: no
// arguments besides flags, and the repetitions in range. Help asked for
// returns flag.ErrHelp (Exit makes it status 0).
func (b *Bench) Parse(args []string) error {
	if err := b.Flags.Parse(args); err != nil {
		return err
	}
	if b.Flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", b.Flags.Args())
	}
	if b.opts.Reps > 0 {
		name := or(b.opts.RepsFlag, "reps")
		switch {
		case b.opts.MaxReps > 0 && (b.Reps < 1 || b.Reps > b.opts.MaxReps):
			return fmt.Errorf("--%s must be from 1 to %d", name, b.opts.MaxReps)
		case b.Reps < 1:
			return fmt.Errorf("--%s must be at least 1", name)
		}
	}
	return nil
}

// Setup prepares what the lab needs, after the benchmark has checked its
// own flags: root (Options.Root), the absolute path of --nlb (which must
// exist with Options.NeedNLB), and with Options.KubeAPIServer a
// kube-apiserver binary when --apiserver is empty.
func (b *Bench) Setup(ctx context.Context) error {
	if b.opts.Root != "" {
		if err := RequireRoot(b.opts.Root); err != nil {
			return err
		}
	}
	var err error
	if b.opts.NeedNLB {
		b.NLB, err = Binary(b.NLB)
	} else {
		b.NLB, err = filepath.Abs(b.NLB)
	}
	if err != nil {
		return err
	}
	if b.opts.KubeAPIServer == nil || b.APIServer != "" {
		return nil
	}
	b.APIServer, err = b.opts.KubeAPIServer(ctx, func(msg string) {
		fmt.Fprintf(b.stderr, "bench-%s: %s\n", b.Name, msg)
	})
	return err
}

// Logf prints a line with the time of day to stderr when -v is on.
func (b *Bench) Logf(format string, args ...any) {
	if b.Verbose {
		fmt.Fprintf(b.stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}
}

// Results are a benchmark's JSON lines: each is printed as it comes and
// kept for NAME.jsonl.
type Results struct {
	b     *Bench
	lines bytes.Buffer
	enc   *json.Encoder
}

// Results returns an empty set of results that prints to stdout.
func (b *Bench) Results(stdout io.Writer) *Results {
	r := &Results{b: b}
	r.enc = json.NewEncoder(io.MultiWriter(stdout, &r.lines))
	return r
}

// Add prints v as one JSON line and keeps it.
func (r *Results) Add(v any) error {
	return r.enc.Encode(v)
}

// Lines returns the JSON lines added so far.
func (r *Results) Lines() []byte {
	return r.lines.Bytes()
}

// Save writes the JSON lines to NAME.jsonl and table to NAME.md in the
// results directory, with the extra files; an empty directory writes
// nothing.
func (r *Results) Save(table string, extra ...File) error {
	files := append([]File{{r.b.Name + ".jsonl", r.Lines()}, {r.b.Name + ".md", []byte(table)}}, extra...)
	return Save(r.b.Out, files...)
}

// File is one result file.
type File struct {
	Name string
	Data []byte
}

// Save writes files into dir, creating it if needed; an empty dir writes
// nothing.
func Save(dir string, files ...File) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			return fmt.Errorf("results: %w", err)
		}
	}
	return nil
}

// Version returns the first line of what a command prints, e.g. a
// program's version, bounded by 10 s.
func Version(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, nil
}

// Met is the verdict of a goal in a results table: "met", or "**not
// met**" in bold.
func Met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}
