// Command e2ebuild builds the kube-apiserver of the e2e/ module once, into
// the user cache (k8slab.BuildAPIServer: ~/.cache/nlb-e2e, reused while
// e2e/go.mod, go.sum, main.go and the Go version stay the same, and guarded
// by a lock file against a parallel build), and prints its path for
// $NLB_KUBE_APISERVER. `make e2e-build` runs it before `go test`, so that
// no test package builds it inside the test timeout.
//
// Only the privileged tests run the API server: when it would be skipped
// (not root, and NLB_PRIVILEGED is not 1) e2ebuild builds nothing and
// prints nothing, unless --force. A set $NLB_KUBE_APISERVER is printed as it
// is. A cold build takes minutes on two cores.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "e2ebuild: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("e2ebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	force := fs.Bool("force", false, "build even when the privileged tests would be skipped")
	dir := fs.String("dir", "", "cache directory (default: nlb-e2e under the user cache directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Getenv(k8slab.APIServerEnv) == "" && !*force && os.Geteuid() != 0 && os.Getenv(netlab.PrivilegedEnv) != "1" {
		fmt.Fprintln(stderr, "e2ebuild: not root: the tests that run kube-apiserver skip; not building it")
		return nil
	}
	if *dir == "" {
		d, err := k8slab.DefaultCacheDir()
		if err != nil {
			return err
		}
		*dir = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	path, err := k8slab.BuildAPIServer(ctx, *dir)
	if err != nil {
		return err
	}
	if d := time.Since(start); d > 5*time.Second {
		fmt.Fprintf(stderr, "e2ebuild: built %s in %v\n", path, d.Round(time.Second))
	}
	fmt.Fprintln(stdout, path)
	return nil
}
