package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestVRRPAdoption: nlb vrrp takes the k0s adoption path as nlb
// controller does: the README recipe's k0s.yaml (controlPlaneLoadBalancing
// enabled: false, k0s's fields only) runs only with --run-disabled-cplb,
// and its overlay's additions (priority 150) reach the instances.
func TestVRRPAdoption(t *testing.T) {
	k0s := filepath.Join(adoptionDir, "k0s.yaml")
	overlay := filepath.Join(adoptionDir, "overlay.yaml")
	check := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"vrrp", "--check", "--config", k0s}, args...), &out, &errb)
		return out.String() + errb.String(), err
	}
	out, err := check("--overlay", overlay, "--run-disabled-cplb")
	if err != nil {
		t.Fatalf("with the overlay and --run-disabled-cplb: %v\n%s", err, out)
	}
	for _, want := range []string{"priority 150", "overlay: " + overlay, "enabled: false for k0s; nlb runs it"} {
		if !strings.Contains(out, want) {
			t.Errorf("--check output lacks %q:\n%s", want, out)
		}
	}
	if out, err := check("--overlay", overlay); err == nil {
		t.Errorf("k0s's disabled section ran without --run-disabled-cplb:\n%s", out)
	}
	out, err = check("--run-disabled-cplb")
	if err != nil {
		t.Fatalf("without the overlay: %v\n%s", err, out)
	}
	if strings.Contains(out, "priority 150") {
		t.Errorf("the overlay's priority without the overlay:\n%s", out)
	}
}
