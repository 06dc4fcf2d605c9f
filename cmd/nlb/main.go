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
	"sort"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "nlb:", err)
		os.Exit(1)
	}
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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(stderr, cmds)
		return fmt.Errorf("unknown command %q", args[0])
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
	fmt.Fprintln(w, "\nRun 'nlb <command> -h' for the flags of a command.")
}

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	_, err := fmt.Fprintln(stdout, "nlb", version)
	return err
}
