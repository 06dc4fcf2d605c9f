package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that Load never panics and that whatever it accepts
// validates again and resolves. Seeds: every testdata/config file, plus the
// corpus in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join(testdataDir, dir, "*.yaml"))
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Load(bytes.NewReader(b))
		if err != nil {
			_ = err.Error()
			return
		}
		_ = c.VRRPInstances()
		_ = c.Warnings()
		if err := c.Runnable(); (err == nil) != (len(c.VRRPInstances()) > 0) {
			t.Fatalf("Runnable says %v with %d instances", err, len(c.VRRPInstances()))
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails re-validation: %v", err)
		}
		_ = c.ResolveInterfaces(fakeResolver{def: "eth0", links: []string{"eth0"}})
		_, _ = c.NodeLocalLoadBalancing.BindPorts()
	})
}
