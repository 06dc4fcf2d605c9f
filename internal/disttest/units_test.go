package disttest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// root is the repository, from this package's directory.
const root = "../.."

// toolWait bounds one run of an external tool.
const toolWait = 2 * time.Minute

// tool returns the path of an external program the test needs. Without it
// the test skips, naming the Debian package, except under CI=true (where
// .ci/deps installs it): then it fails.
func tool(t *testing.T, name, debPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (Debian package %s, installed by .ci/deps)", name, debPackage)
		}
		t.Skipf("%s is missing: install Debian's %s (make deps does) to run this test", name, debPackage)
	}
	return p
}

// runTool runs name with args and returns its combined output and error.
func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// unitSpec is what one unit of dist/systemd must say.
type unitSpec struct {
	file     string   // dist/systemd/<file>
	mode     string   // nlb <mode>
	source   string   // cmd/nlb/<source>: the mode's code (does it handle SIGHUP?)
	caps     []string // CapabilityBoundingSet = AmbientCapabilities
	families []string // RestrictAddressFamilies
	config   string   // the --config it reads, shipped as dist/etc/<base name>; "" for none
}

// units are the units and what each mode needs (see the comments in the
// unit files): the capabilities and socket families its code uses.
var units = []unitSpec{
	{"nlb-controller.service", "controller", "controller.go", []string{"CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_BPF"},
		[]string{"AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_UNIX"}, "/etc/nlb/controller.yaml"},
	{"nlb-vrrp.service", "vrrp", "vrrp.go", []string{"CAP_NET_RAW", "CAP_NET_ADMIN"},
		[]string{"AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_UNIX"}, "/etc/nlb/vrrp.yaml"},
	{"nlb-client.service", "client", "client.go", nil,
		[]string{"AF_INET", "AF_INET6", "AF_UNIX"}, ""},
}

// unitFile is a parsed unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, b []byte) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("unit line %q: not key=value in a section", l)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one returns the only value of key in section, failing if there is not
// exactly one.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Errorf("[%s] %s: %q, want exactly one", section, key, v)
		return ""
	}
	return v[0]
}

// verifyUnits runs systemd-analyze verify on the unit files, copied with
// ExecStart's /usr/bin/nlb replaced by exe (verify checks that the program
// exists), and fails on any output: verify exits 0 on what it ignores
// ("Unknown key", "Failed to parse ..., ignoring").
func verifyUnits(t *testing.T, exe string, files ...string) {
	t.Helper()
	sa := tool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	var copies []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("\nExecStart=/usr/bin/nlb ")) {
			t.Errorf("%s: ExecStart does not run /usr/bin/nlb", f)
		}
		b = bytes.ReplaceAll(b, []byte("\nExecStart=/usr/bin/nlb "), []byte("\nExecStart="+exe+" "))
		c := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(c, b, 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, c)
	}
	out, err := runTool(t, sa, append([]string{"verify", "--man=no"}, copies...)...)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify %v: %v\n%s", files, err, out)
	}
}

// TestUnitsVerify runs systemd-analyze verify on dist/systemd.
func TestUnitsVerify(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, u := range units {
		files = append(files, filepath.Join(root, "dist/systemd", u.file))
	}
	verifyUnits(t, exe, files...)
}

// sighup matches a SIGHUP handler in a mode's source.
var sighup = regexp.MustCompile(`signal\.Notify\([^)]*SIGHUP`)

// TestUnits checks each unit's settings against what its mode needs and
// does: Type=notify (cmd/nlb/notify.go), Restart=always, the sandbox, the
// exact capabilities and socket families, ExecReload exactly when the
// mode's code handles SIGHUP, and the configuration and environment files
// it names shipped in dist/etc.
func TestUnits(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(root, "dist/systemd"))
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, u := range units {
		want = append(want, u.file)
	}
	for _, e := range entries {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("dist/systemd holds %q, want %q", got, want)
	}
	for _, spec := range units {
		t.Run(spec.mode, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(root, "dist/systemd", spec.file))
			if err != nil {
				t.Fatal(err)
			}
			u := parseUnit(t, b)
			for _, kv := range [][3]string{
				{"Service", "Type", "notify"},
				{"Service", "Restart", "always"},
				{"Service", "NoNewPrivileges", "yes"},
				{"Service", "ProtectSystem", "strict"},
				{"Service", "ProtectHome", "yes"},
				{"Service", "PrivateTmp", "yes"},
				{"Service", "ReadOnlyPaths", "/etc/nlb"},
				{"Install", "WantedBy", "multi-user.target"},
			} {
				if v := u.one(t, kv[0], kv[1]); v != kv[2] {
					t.Errorf("[%s] %s=%s, want %s", kv[0], kv[1], v, kv[2])
				}
			}
			for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
				if v := strings.Fields(u.one(t, "Service", key)); !sameSet(v, spec.caps) {
					t.Errorf("%s=%q, want %q", key, v, spec.caps)
				}
			}
			if v := strings.Fields(u.one(t, "Service", "RestrictAddressFamilies")); !sameSet(v, spec.families) {
				t.Errorf("RestrictAddressFamilies=%q, want %q", v, spec.families)
			}

			src, err := os.ReadFile(filepath.Join(root, "cmd/nlb", spec.source))
			if err != nil {
				t.Fatal(err)
			}
			reload := u["Service"]["ExecReload"]
			if sighup.Match(src) {
				if len(reload) != 1 || reload[0] != "/bin/kill -HUP $MAINPID" {
					t.Errorf("nlb %s reloads on SIGHUP: want ExecReload=/bin/kill -HUP $MAINPID, got %q", spec.mode, reload)
				}
			} else if len(reload) != 0 {
				t.Errorf("ExecReload=%q, but nlb %s does not handle SIGHUP (cmd/nlb/%s): it would stop", reload, spec.mode, spec.source)
			}

			argv := strings.Fields(u.one(t, "Service", "ExecStart"))
			if len(argv) < 2 || argv[0] != "/usr/bin/nlb" || argv[1] != spec.mode {
				t.Fatalf("ExecStart=%q, want /usr/bin/nlb %s ...", argv, spec.mode)
			}
			if i := slices.Index(argv, "--config"); spec.config != "" && (i < 0 || i+1 == len(argv) || argv[i+1] != spec.config) {
				t.Errorf("ExecStart=%q, want --config %s", argv, spec.config)
			}
			shipped := []string{}
			if spec.config != "" {
				shipped = append(shipped, spec.config)
			}
			for _, ef := range u["Service"]["EnvironmentFile"] {
				shipped = append(shipped, strings.TrimPrefix(ef, "-"))
			}
			for _, p := range shipped {
				if !strings.HasPrefix(p, "/etc/nlb/") {
					t.Errorf("%s is not in /etc/nlb", p)
					continue
				}
				if _, err := os.Stat(filepath.Join(root, "dist/etc", strings.TrimPrefix(p, "/etc/nlb/"))); err != nil {
					t.Errorf("%s is not shipped: %v", p, err)
				}
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// nlbBinary builds nlb once for the tests of this package.
func nlbBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin, err := netlab.Build(context.Background(), dir)
	if err != nil {
		t.Fatalf("build nlb: %v", err)
	}
	return bin
}

// TestExampleConfigs runs `nlb controller --check` and `nlb vrrp --check` on
// the example configurations the packages install in /etc/nlb: what
// --check accepts runs.
func TestExampleConfigs(t *testing.T) {
	checkConfigs(t, nlbBinary(t), filepath.Join(root, "dist/etc"))
}

// checkConfigs runs each unit's --check on its configuration in dir.
func checkConfigs(t *testing.T, bin, dir string) {
	t.Helper()
	for _, u := range units {
		if u.config == "" {
			continue
		}
		path := filepath.Join(dir, strings.TrimPrefix(u.config, "/etc/nlb/"))
		out, err := runTool(t, bin, u.mode, "--check", "--config", path)
		if err != nil || !strings.Contains(out, "valid, 1 VRRP instance(s)") {
			t.Errorf("nlb %s --check --config %s: %v\n%s", u.mode, path, err, out)
		}
	}
}
