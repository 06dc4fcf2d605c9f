package deptest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/nlb-dev/nlb"

// root is the module root, two levels up from this package.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// productPackage reports whether path is part of the nlb binary's product
// code rather than a lab, a benchmark or a test helper.
func productPackage(path string) bool {
	rel, ok := strings.CutPrefix(path, module)
	if !ok {
		return false
	}
	rel = strings.TrimPrefix(rel, "/")
	return !strings.HasPrefix(rel, "internal/") && !strings.HasPrefix(rel, "bench/") && rel != ""
}

// rules reads the import table from ARCHITECTURE.md.
func rules(t *testing.T, dir string) []Rule {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(dir, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	local := func(rel string) bool {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
		return err == nil && fi.IsDir() && !strings.Contains(rel, ".")
	}
	rs, err := ParseTable(doc, "What may import what", Expander(module, local))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// ruleFor returns the most specific rule covering path.
func ruleFor(rs []Rule, path string) (Rule, bool) {
	best, found := Rule{}, false
	for _, r := range rs {
		if r.Covers(path) && (!found || len(r.Package) > len(best.Package)) {
			best, found = r, true
		}
	}
	return best, found
}

// TestImportRules checks every product package against its row of
// ARCHITECTURE.md's "What may import what" table (one subtest per row),
// for the Linux build the product ships. It replaces the older k8s.io-only
// checks: the rows of cmd/nlb and lb/k8s forbid every k8s.io module and
// the serializers client-go would bring, which kept megabytes of the binary
// resident in `nlb client` (bench/README.md, client section).
func TestImportRules(t *testing.T) {
	dir := root(t)
	rs := rules(t, dir)
	pkgs, err := List(dir, "linux", "./...")
	if err != nil {
		t.Fatal(err)
	}
	byRule := make(map[string][]*Package)
	for path, p := range pkgs {
		if !productPackage(path) {
			continue
		}
		r, ok := ruleFor(rs, path)
		if !ok {
			t.Errorf("%s has no row in ARCHITECTURE.md's import table: add one", path)
			continue
		}
		byRule[r.Package] = append(byRule[r.Package], p)
		for _, d := range append(p.Imports, p.Deps...) {
			if strings.HasPrefix(d, module+"/internal/") {
				t.Errorf("product package %s depends on lab package %s", path, d)
			}
		}
	}
	for _, r := range rs {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(r.Package, module+"/"), "$"), func(t *testing.T) {
			if len(byRule[r.Package]) == 0 {
				t.Fatalf("row at ARCHITECTURE.md line %d names %s, which is no package", r.Line, r.Package)
			}
			for _, p := range byRule[r.Package] {
				for _, err := range Check(r, p, pkgs) {
					t.Error(err)
				}
			}
		})
	}
}

// TestCheckCatchesViolations shows that Check fails on what a row forbids:
// a direct import outside May, and a transitive dependency in MustNot.
func TestCheckCatchesViolations(t *testing.T) {
	all := map[string]*Package{
		"fmt":         {ImportPath: "fmt", Standard: true},
		"example/lb":  {ImportPath: "example/lb", Imports: []string{"fmt", "example/vrrp", "github.com/x/y"}, Deps: []string{"fmt", "example/vrrp", "github.com/x/y", "k8s.io/client-go/rest"}},
		"example/ok":  {ImportPath: "example/ok", Imports: []string{"fmt", "github.com/x/y/z", "example/ok/sub"}, Deps: []string{"fmt", "github.com/x/y/z"}},
		"example/bad": {ImportPath: "example/bad", Imports: []string{"github.com/x/yz"}},
	}
	r := Rule{Package: "example/lb$", May: []string{"github.com/x/y"}, MustNot: []string{"example/vrrp$"}, MustNotLink: []string{"k8s.io/*"}}
	errs := Check(r, all["example/lb"], all)
	if len(errs) != 3 {
		t.Fatalf("Check found %d problems, want 3 (import of vrrp not allowed, vrrp forbidden, k8s.io forbidden): %v", len(errs), errors.Join(errs...))
	}
	ok := Rule{Package: "example/ok/...", May: []string{"github.com/x/y"}, MustNotLink: []string{"k8s.io/*"}}
	if errs := Check(ok, all["example/ok"], all); len(errs) != 0 {
		t.Errorf("Check of an allowed package: %v", errors.Join(errs...))
	}
	bad := Rule{Package: "example/bad$", May: []string{"github.com/x/y"}}
	if errs := Check(bad, all["example/bad"], all); len(errs) != 1 {
		t.Errorf("github.com/x/yz matched the prefix github.com/x/y: %v", errs)
	}
}

func TestParseTable(t *testing.T) {
	doc := "# A\n\n## What may import what\n\n| package | may | must not |\n|---|---|---|\n" +
		"| `vrrp` | stdlib, `prometheus/client_golang` (metrics) | `x/sys/unix`, `k8s.io` |\n" +
		"| `ebpf/...` | `cilium/ebpf` | `lb` |\n\n## Next\n| `other` | | |\n"
	local := func(rel string) bool { return rel == "vrrp" || rel == "lb" || rel == "ebpf" }
	rs, err := ParseTable([]byte(doc), "What may import what", Expander("m", local))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Package: "m/vrrp$", May: []string{"github.com/prometheus/client_golang"}, MustNot: []string{"golang.org/x/sys/unix", "k8s.io/*"}, Line: 7},
		{Package: "m/ebpf/...", May: []string{"github.com/cilium/ebpf"}, MustNot: []string{"m/lb$"}, Line: 8},
	}
	if len(rs) != len(want) {
		t.Fatalf("got %d rules, want %d: %+v", len(rs), len(want), rs)
	}
	for i := range want {
		if strings.Join(rs[i].May, ",") != strings.Join(want[i].May, ",") || rs[i].Package != want[i].Package ||
			strings.Join(rs[i].MustNot, ",") != strings.Join(want[i].MustNot, ",") || rs[i].Line != want[i].Line {
			t.Errorf("rule %d = %+v, want %+v", i, rs[i], want[i])
		}
	}
}
