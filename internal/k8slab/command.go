package k8slab

import (
	"context"
	"os"
)

// APIServerBinary returns the kube-apiserver binary for a command (a
// benchmark): the one APIServerEnv names (`make e2e-build` sets it), else
// BuildAPIServer's in DefaultCacheDir, built first when it is not there
// (minutes from a cold cache). It is what APIServerT is for tests. note is
// told where the binary comes from before any build starts.
func APIServerBinary(ctx context.Context, note func(msg string)) (string, error) {
	if p := os.Getenv(APIServerEnv); p != "" {
		note("kube-apiserver from $" + APIServerEnv + " (" + p + ")")
		return BuildAPIServer(ctx, "")
	}
	dir, err := DefaultCacheDir()
	if err != nil {
		return "", err
	}
	note("kube-apiserver from " + dir + " (the first build takes minutes)")
	return BuildAPIServer(ctx, dir)
}
