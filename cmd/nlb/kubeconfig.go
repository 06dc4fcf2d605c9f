package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nlb-dev/nlb/lb/k8s"
)

const kubeconfigUsage = `Usage: nlb kubeconfig --in FILE --out FILE [--server URL]

Write a copy of the kubeconfig --in to --out in which only the server of the
current context's cluster is replaced, by default with the local listener of
'nlb client' (https://127.0.0.1:7443), as k0s does for the kubelet of a
worker behind its node-local load balancer. Certificates, keys and tokens are
kept as they are, TLS still verifies against the kubeconfig's CA (kube-apiserver
certificates carry 127.0.0.1 and localhost among their names in k0s).

The output is written atomically (temporary file and rename) with mode 0600.
--out - writes to standard output.

Flags:
`

// runKubeconfig implements `nlb kubeconfig`.
func runKubeconfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("kubeconfig", kubeconfigUsage, stdout)
	in := fs.String("in", "", "kubeconfig `file` to read (required)")
	out := fs.String("out", "", "kubeconfig `file` to write, - for standard output (required)")
	server := fs.String("server", "https://127.0.0.1:7443", "API server `URL` to write, or host:port to replace only those")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return usageErrorf(fs, "--in and --out are required")
	}
	if err := checkServerURL(*server); err != nil {
		return fmt.Errorf("kubeconfig: --server: %w", err)
	}
	if *out != "-" {
		if err := checkOutPath(*out); err != nil {
			return fmt.Errorf("kubeconfig: --out: %w", err)
		}
	}
	kc, err := k8s.LoadKubeconfig(*in)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	data, err := kc.WithServer(*server)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if *out == "-" {
		_, err := stdout.Write(data)
		return err
	}
	if err := writeFileAtomic(*out, data, 0o600); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	return nil
}

// checkServerURL accepts an absolute https URL with a host, a port from 1
// to 65535 if it has one (else 443), and no user information, query or
// fragment; or host:port (which replaces only the host and port of the old
// URL).
func checkServerURL(s string) error {
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			return fmt.Errorf("%q is neither an https://host:port URL nor host:port", s)
		}
		return checkURLPort(s, port)
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "https" || u.Hostname() == "" {
		return fmt.Errorf("%q is not an https://host:port URL", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want https://host:port[/path], without user, query or fragment", s)
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		return checkURLPort(s, p)
	}
	return nil
}

// checkURLPort reports a port that is not a number from 1 to 65535.
func checkURLPort(s, port string) error {
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port must be between 1 and 65535, got %q", s, port)
	}
	return nil
}

// checkOutPath refuses an --out that names a directory, or whose directory
// does not exist, before anything is read: the atomic write's temporary
// file and rename would fail with a confusing error.
func checkOutPath(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory; want a file name", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: directory %s does not exist", path, dir)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s: %s is not a directory", path, dir)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file next to path with the
// given mode, syncs it and renames it over path, so that readers see either
// the old or the new content.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
