package deptest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Rule is one row of the import table.
type Rule struct {
	// Package is the import path the rule governs. A path ending in "/..."
	// covers the package and every package below it; one ending in "$"
	// only that package.
	Package string
	// May lists the import path prefixes the package may import directly,
	// besides the standard library and its own subtree.
	May []string
	// MustNot lists import path prefixes that neither the package nor any
	// of the module's packages it depends on may import: what the package's
	// own code must not reach, however indirectly. Third-party libraries'
	// own dependencies are not counted here (see MustNotLink).
	MustNot []string
	// MustNotLink lists import path prefixes that must not be linked at
	// all: not anywhere among the package's transitive dependencies.
	MustNotLink []string
	// Line is the line of the table the rule was read from, for messages.
	Line int
}

// Covers reports whether the rule governs the package path.
func (r Rule) Covers(path string) bool {
	return hasPathPrefix(path, r.Package)
}

// inSubtree reports whether imp is inside the subtree a "/..." rule
// governs; such imports are the subtree's own business.
func (r Rule) inSubtree(imp string) bool {
	base, ok := strings.CutSuffix(r.Package, "/...")
	return ok && (imp == base || strings.HasPrefix(imp, base+"/"))
}

// Package is what `go list -deps -json` reports of one package.
type Package struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
	Module     *struct{ Path string }
}

// List runs `go list -deps -json` on patterns in dir and returns every
// package it names, keyed by import path. goos selects the target system
// ("" for the host's).
func List(dir, goos string, patterns ...string) (map[string]*Package, error) {
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	args := append([]string{"list", "-deps", "-json"}, patterns...)
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = dir
	if goos != "" {
		cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w: %s", err, stderr.String())
	}
	pkgs := make(map[string]*Package)
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list output: %w", err)
		}
		pkgs[p.ImportPath] = &p
	}
	return pkgs, nil
}

// Check returns one error for each import of pkg that breaks rule.
func Check(rule Rule, pkg *Package, all map[string]*Package) []error {
	var errs []error
	for _, imp := range pkg.Imports {
		if p := all[imp]; p != nil && p.Standard || imp == "C" || imp == "unsafe" {
			continue
		}
		if rule.inSubtree(imp) {
			continue
		}
		if !slices.ContainsFunc(rule.May, func(m string) bool { return hasPathPrefix(imp, m) }) {
			errs = append(errs, fmt.Errorf("%s imports %s, which its row (ARCHITECTURE.md line %d) does not allow", pkg.ImportPath, imp, rule.Line))
		}
	}
	// What the module's own code imports: pkg's imports and those of every
	// package of the module among its dependencies.
	reached := slices.Clone(pkg.Imports)
	module := ""
	if pkg.Module != nil {
		module = pkg.Module.Path
	}
	for _, dep := range pkg.Deps {
		if p := all[dep]; p != nil && module != "" && p.Module != nil && p.Module.Path == module {
			for _, imp := range p.Imports {
				if !rule.inSubtree(imp) {
					reached = append(reached, dep+" → "+imp)
				}
			}
		}
	}
	for _, r := range reached {
		via, imp, ok := strings.Cut(r, " → ")
		if !ok {
			via, imp = pkg.ImportPath, r
		}
		for _, bad := range rule.MustNot {
			if hasPathPrefix(imp, bad) {
				errs = append(errs, fmt.Errorf("%s imports %s (from %s), which the row of %s (ARCHITECTURE.md line %d) forbids", via, imp, pkg.ImportPath, strings.TrimSuffix(rule.Package, "$"), rule.Line))
			}
		}
	}
	for _, dep := range append(slices.Clone(pkg.Imports), pkg.Deps...) {
		for _, bad := range rule.MustNotLink {
			if hasPathPrefix(dep, bad) {
				errs = append(errs, fmt.Errorf("%s links %s, which its row (ARCHITECTURE.md line %d) forbids", pkg.ImportPath, dep, rule.Line))
			}
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return slices.CompactFunc(errs, func(a, b error) bool { return a.Error() == b.Error() })
}

// hasPathPrefix reports whether path is prefix or below it. A prefix that
// ends in "." or "*" matches any path that starts with it as a string (for
// example "k8s.io/" matches every k8s.io module). A prefix that ends in "$"
// matches only that exact path; one that ends in "/..." the path and all
// below it.
func hasPathPrefix(path, prefix string) bool {
	if p, ok := strings.CutSuffix(prefix, "$"); ok {
		return path == p
	}
	if p, ok := strings.CutSuffix(prefix, "/..."); ok {
		return path == p || strings.HasPrefix(path, p+"/")
	}
	if p, ok := strings.CutSuffix(prefix, "*"); ok {
		return strings.HasPrefix(path, p)
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// ParseTable reads the import table from a markdown document: the first
// table after a heading containing heading. Each row has three or four
// cells: the package, what it may import, what it must not import, and
// what it must not link. Only code spans
// (`...`) in a cell are read; the prose around them is for people. expand
// turns a code span into an import path prefix (see [Expander]); a span
// it returns "" for is ignored.
func ParseTable(doc []byte, heading string, expand func(string) string) ([]Rule, error) {
	var rules []Rule
	sc := bufio.NewScanner(bytes.NewReader(doc))
	inSection, inTable := false, false
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") {
			if inTable {
				break
			}
			inSection = strings.Contains(text, heading)
			continue
		}
		if !inSection {
			continue
		}
		if !strings.HasPrefix(text, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(text, "|"), "|")
		if len(cells) < 3 || strings.Trim(cells[0], " -:") == "" || !strings.Contains(cells[0], "`") {
			continue // header or separator
		}
		pkgs := spans(cells[0], expand)
		if len(pkgs) == 0 {
			return nil, fmt.Errorf("line %d: no package named in %q", line, cells[0])
		}
		r := Rule{Package: pkgs[0], May: spans(cells[1], expand), MustNot: spans(cells[2], expand), Line: line}
		if len(cells) > 3 {
			r.MustNotLink = spans(cells[3], expand)
		}
		rules = append(rules, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("no import table under a heading containing %q", heading)
	}
	return rules, nil
}

// spans returns the expanded code spans of a table cell.
func spans(cell string, expand func(string) string) []string {
	var out []string
	parts := strings.Split(cell, "`")
	for i := 1; i < len(parts); i += 2 {
		if p := expand(strings.TrimSpace(parts[i])); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Expander returns the expand function ParseTable uses for a module: a
// span naming one of the module's packages (as listed in local, relative
// to the module root) becomes its import path, that package alone ("lb")
// or with everything below it ("ebpf/..."); "x/..." becomes
// "golang.org/x/..."; "owner/repo/..." without a dot in its first element
// becomes "github.com/owner/repo/..."; anything with a dot in its first
// element (k8s.io, sigs.k8s.io/yaml) is taken as it is.
func Expander(module string, local func(rel string) bool) func(string) string {
	return func(s string) string {
		s = strings.TrimSpace(s)
		if s == "" {
			return ""
		}
		first, _, _ := strings.Cut(s, "/")
		base := strings.TrimSuffix(s, "/...")
		switch {
		case local(base):
			if base == s {
				return module + "/" + s + "$"
			}
			return module + "/" + s
		case first == "x":
			return "golang.org/" + s
		case strings.Contains(first, "."):
			if !strings.Contains(s, "/") {
				return s + "/*" // a whole domain, e.g. k8s.io
			}
			return s
		default:
			return "github.com/" + s
		}
	}
}
