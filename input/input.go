// Package input reads the files nlb is given (configurations, kubeconfigs,
// token files) defensively: every read is bounded, so that a wrong path
// such as /dev/zero or a runaway generated file gets a clear error instead
// of exhausting memory, and a YAML file must hold exactly one document, so
// that nothing written after a "---" is silently ignored.
package input

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	yaml "go.yaml.in/yaml/v2"
)

// Size bounds of the files nlb reads.
const (
	// MaxConfigSize bounds a configuration file (k0s ClusterConfig, k0sctl
	// Cluster, nlb proxy configuration). The largest valid k0s
	// configuration, 255 VRRP instances with every nlb addition, four
	// VIPs and four peers each, is 175 KiB; a k0s ClusterConfig is also a
	// Kubernetes object, which etcd caps at 1.5 MiB by default. Checking
	// the worst 1 MiB file (175,000 broken list items) peaks at 71 MB of
	// RSS.
	MaxConfigSize = 1 << 20
	// MaxKubeconfigSize bounds a kubeconfig. An admin or kubelet
	// kubeconfig of k0s is 5-10 KiB with its certificates embedded; a
	// user's merged kubeconfig with many clusters and CA bundles stays far
	// below 4 MiB.
	MaxKubeconfigSize = 4 << 20
	// MaxTokenSize bounds a bearer token file (a service account JWT is
	// 1-2 KiB).
	MaxTokenSize = 1 << 20
)

// TooLargeError reports input above its bound.
type TooLargeError struct {
	// Name is the file name (or a description of the stream).
	Name string
	// Limit is the bound, in bytes.
	Limit int64
}

// Error returns "NAME is larger than LIMIT".
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %s", e.Name, FormatSize(e.Limit))
}

// FormatSize writes n bytes as "4 MiB", "512 KiB" or "100 bytes".
func FormatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// ReadFile reads the named file, or fails with a *TooLargeError when it
// holds more than max bytes. It never reads more than max+1 bytes, so a
// device that never ends (/dev/zero) fails at once.
func ReadFile(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, name, max)
}

// ReadAll reads r to the end, or fails with a *TooLargeError naming name
// after max bytes.
func ReadAll(r io.Reader, name string, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, &TooLargeError{Name: name, Limit: max}
	}
	return b, nil
}

// OneYAMLDocument returns an error when data holds a second YAML document
// that is not empty: YAML decoders that read one document (sigs.k8s.io/yaml)
// would silently ignore it. Empty documents (a trailing "---", comments)
// are accepted. A syntax error after the first document is returned too;
// a syntax error in the first document is not (the caller's own decoding
// reports it with its context).
func OneYAMLDocument(data []byte) (err error) {
	defer func() {
		// The decoder reports errors by panicking internally and recovers
		// them itself; should one escape, it is bad input, not a crash.
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for n := 1; ; n++ {
		var v any
		err := dec.Decode(&v)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && n == 1:
			return nil
		case err != nil:
			return fmt.Errorf("YAML document %d: %w", n, err)
		case v != nil && n > 1:
			return fmt.Errorf("the file holds more than one YAML document (document %d is not empty): "+
				"nlb reads exactly one; remove the \"---\" and what follows, or merge it into the first", n)
		}
	}
}
