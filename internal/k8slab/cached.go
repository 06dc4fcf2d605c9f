package k8slab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// CachedAPIServer returns the kube-apiserver binary BuildAPIServer would
// return from dir, without building it: ok is false when dir holds no
// binary for the current e2e module and Go version yet. When APIServerEnv
// is set, its value is returned if the file exists.
func CachedAPIServer(ctx context.Context, dir string) (path string, ok bool, err error) {
	if p := os.Getenv(APIServerEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", false, fmt.Errorf("k8slab: %s: %w", APIServerEnv, err)
		}
		return p, true, nil
	}
	e2e, goVersion, err := e2eModule(ctx)
	if err != nil {
		return "", false, err
	}
	key, err := buildKey(e2e, goVersion)
	if err != nil {
		return "", false, err
	}
	path = filepath.Join(dir, "kube-apiserver-"+key)
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return path, false, nil
	}
	return path, true, nil
}
