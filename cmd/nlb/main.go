// Command nlb is a native VRRP daemon and L4 load balancer that keeps a
// Kubernetes control plane reachable: it replaces keepalived (VRRP) and
// Envoy (node-local load balancing) in k0s.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on stderr and returns the process's exit status:
// 0 on success and for help that was asked for, 2 for a mistake on the
// command line (its error and a hint where to find the usage, not the
// whole help), 1 for every other error.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "nlb:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.hint {
			fmt.Fprintf(stderr, "Run '%s -h' for usage.\n", strings.TrimSpace("nlb "+ue.cmd))
		}
		return 2
	}
	return 1
}

// usageError is a mistake on the command line of `nlb <cmd>`.
type usageError struct {
	cmd  string // the flag set's name: "proxy", "manifest worker"; "" for nlb itself
	err  error
	hint bool // point at `nlb <cmd> -h` (false: the usage was printed already)
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.err.Error()
	}
	return e.cmd + ": " + e.err.Error()
}

func (e *usageError) Unwrap() error { return e.err }

// usageErrorf returns a usage error of fs's command.
func usageErrorf(fs *flag.FlagSet, format string, args ...any) error {
	return &usageError{cmd: fs.Name(), err: fmt.Errorf(format, args...), hint: true}
}

// command is one nlb subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands. It is built per call so that nothing is
// global.
func commands() map[string]command {
	return map[string]command{
		"vrrp":       {"run VRRP instances (keepalived replacement)", runVRRP},
		"controller": {"control plane load balancing: VRRP + proxy + discovery + steering (k0s CPLB)", runController},
		"proxy":      {"run the L4 TCP load balancer", runProxy},
		"client":     {"node-local load balancing on a worker (k0s NLLB replacement)", runClient},
		"kubeconfig": {"point a kubeconfig at the local client listener", runKubeconfig},
		"version":    {"print the version", runVersion},
		"status":     {"print a readable summary of a running nlb (admin /status)", runStatus},
		"manifest":   {"print the controller or worker static pod manifest", runManifest},
	}
}

// run runs the nlb command line args. Help that was asked for (-h, --help,
// help [COMMAND]) goes to stdout and returns flag.ErrHelp; a command line
// mistake returns a *usageError.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return &usageError{err: errors.New("no command given")}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout, cmds)
		return flag.ErrHelp
	case "help":
		if len(args) == 1 {
			usage(stdout, cmds)
			return flag.ErrHelp
		}
		if len(args) > 2 {
			return &usageError{err: fmt.Errorf("help: want one command, got %q", args[1:]), hint: true}
		}
		// `nlb help proxy` is `nlb proxy -h`.
		args = []string{args[1], "-h"}
	case "-version", "--version":
		if len(args) > 1 {
			return &usageError{err: fmt.Errorf("%s: unexpected arguments %q", args[0], args[1:]), hint: true}
		}
		return runVersion(ctx, nil, stdout, stderr)
	}
	c, ok := cmds[args[0]]
	if !ok {
		return &usageError{err: fmt.Errorf("unknown command %q", args[0]), hint: true}
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "Usage: nlb <command> [flags]\n\nCommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'nlb <command> -h' for the flags of a command, 'nlb --version' for the version.")
}

// newFlagSet returns the flag set of `nlb <name>`: its Usage prints text
// and then the flags (printDefaults) to stdout. Parse it with parseFlags.
func newFlagSet(name, text string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseFlags reports errors, once
	fs.Usage = func() {
		fmt.Fprint(stdout, text)
		printDefaults(stdout, fs)
	}
	return fs
}

// parseFlags parses args into fs, made by newFlagSet. -h or --help prints
// the usage (fs.Usage) and returns flag.ErrHelp; a bad flag or a
// positional argument returns a *usageError naming it as --flag.
func parseFlags(fs *flag.FlagSet, args []string) error {
	help := fs.Usage
	fs.Usage = func() {} // the flag package calls it on every error too
	err := fs.Parse(args)
	fs.Usage = help
	switch {
	case errors.Is(err, flag.ErrHelp):
		help()
		return err
	case err != nil:
		return &usageError{cmd: fs.Name(), err: errors.New(dashDash(err.Error())), hint: true}
	case fs.NArg() > 0:
		return usageErrorf(fs, "unexpected arguments %q", fs.Args())
	}
	return nil
}

// flagInMessage matches the flag names in the flag package's errors
// ("flag provided but not defined: -x", "invalid value "v" for flag -x:
// ...", "invalid boolean value "v" for -x: ...", "flag needs an argument:
// -x"), whatever the user typed.
var flagInMessage = regexp.MustCompile(`^(flag provided but not defined: |flag needs an argument: |invalid (?:value|boolean value) "(?:[^"\\]|\\.)*" for (?:flag )?|invalid boolean flag )-+`)

// dashDash writes the flag named in a flag package error as --flag, the
// way nlb's usage spells flags.
func dashDash(msg string) string {
	if m := flagInMessage.FindStringSubmatchIndex(msg); m != nil {
		return msg[:m[3]] + "--" + msg[m[1]:]
	}
	return msg
}

// printDefaults writes fs's flags as flag.PrintDefaults does, but spelled
// --flag as in nlb's usage texts, and without hidden flags (empty usage).
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if f.Usage == "" {
			return
		}
		def := ""
		if !isZeroValue(f) {
			if isStringFlag(f) {
				def = fmt.Sprintf("%q", f.DefValue)
			} else {
				def = f.DefValue
			}
		}
		printFlag(w, f, def)
	})
}

// printFlag writes one flag of printDefaults; def is its default as
// printed after "default", empty for none.
func printFlag(w io.Writer, f *flag.Flag, def string) {
	var b strings.Builder
	fmt.Fprintf(&b, "  --%s", f.Name)
	name, text := flag.UnquoteUsage(f)
	if name != "" {
		b.WriteString(" " + name)
	}
	b.WriteString("\n    \t")
	b.WriteString(strings.ReplaceAll(text, "\n", "\n    \t"))
	if def != "" {
		b.WriteString(" (default " + def + ")")
	}
	b.WriteString("\n")
	io.WriteString(w, b.String())
}

// isStringFlag reports a flag defined with FlagSet.String or StringVar,
// whose default printDefaults quotes.
func isStringFlag(f *flag.Flag) bool {
	return reflect.TypeOf(f.Value).String() == "*flag.stringValue"
}

// isZeroValue reports whether f's default is its type's zero value, which
// printDefaults leaves out (as flag.PrintDefaults).
func isZeroValue(f *flag.Flag) (zero bool) {
	typ := reflect.TypeOf(f.Value)
	var z reflect.Value
	if typ.Kind() == reflect.Pointer {
		z = reflect.New(typ.Elem())
	} else {
		z = reflect.Zero(typ)
	}
	defer func() {
		if recover() != nil { // String on a nil receiver
			zero = f.DefValue == ""
		}
	}()
	v, ok := z.Interface().(flag.Value)
	if !ok {
		return f.DefValue == ""
	}
	return f.DefValue == v.String()
}

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"

const versionUsage = `Usage: nlb version (or nlb --version)

Prints the version of nlb.
`

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("version", versionUsage, stdout)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, "nlb", version)
	return err
}
