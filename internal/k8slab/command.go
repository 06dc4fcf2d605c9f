package k8slab

import "context"

// APIServerBinary is APIServerT for commands (the benchmarks):
// BuildAPIServer into DefaultCacheDir, which returns the binary that
// APIServerEnv names when it is set (`make e2e-build`).
func APIServerBinary(ctx context.Context) (string, error) {
	dir, err := DefaultCacheDir()
	if err != nil {
		return "", err
	}
	return BuildAPIServer(ctx, dir)
}
