package disttest

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// pkgFile is a file every package installs: its mode and, for all but the
// binary, its source in the repository.
type pkgFile struct {
	mode fs.FileMode
	src  string // relative to the repository; "" for /usr/bin/nlb
}

// pkgFiles is what every package holds, and nothing else.
var pkgFiles = map[string]pkgFile{
	"/usr/bin/nlb": {0o755, ""},
	"/usr/lib/systemd/system/nlb-controller.service": {0o644, "dist/systemd/nlb-controller.service"},
	"/usr/lib/systemd/system/nlb-vrrp.service":       {0o644, "dist/systemd/nlb-vrrp.service"},
	"/usr/lib/systemd/system/nlb-client.service":     {0o644, "dist/systemd/nlb-client.service"},
	"/etc/nlb/controller.yaml":                       {0o600, "dist/etc/controller.yaml"},
	"/etc/nlb/vrrp.yaml":                             {0o600, "dist/etc/vrrp.yaml"},
	"/etc/nlb/controller.env":                        {0o644, "dist/etc/controller.env"},
	"/etc/nlb/vrrp.env":                              {0o644, "dist/etc/vrrp.env"},
	"/etc/nlb/client.env":                            {0o644, "dist/etc/client.env"},
	"/usr/share/nlb/prometheus/nlb-alerts.yaml":      {0o644, "dist/prometheus/nlb-alerts.yaml"},
}

// pkgArch is one architecture of make package: the names each format
// gives it and the ELF machine of its binary.
type pkgArch struct {
	deb, rpm, apk string
	machine       elf.Machine
}

var pkgArchs = []pkgArch{
	{"amd64", "x86_64", "x86_64", elf.EM_X86_64},
	{"arm64", "aarch64", "aarch64", elf.EM_AARCH64},
	{"armhf", "armv7hl", "armv7", elf.EM_ARM},
}

// TestPackages checks the packages of `make package` (make test-packages
// runs it with NLB_PACKAGE_DIR and NLB_PKG_VERSION): nine of them, each
// holding exactly pkgFiles with their modes and contents and the binary of
// its architecture. The amd64 .deb is installed into a scratch root with
// its own dpkg database (the machine's dpkg database and log are checked
// unchanged): its conffiles are /etc/nlb's, its units pass
// systemd-analyze verify, the installed nlb prints its version and
// accepts the example configurations, its maintainer scripts are
// dist/scripts/daemon-reload.sh (nothing started), and a purge leaves
// nothing behind.
func TestPackages(t *testing.T) {
	dir, version := os.Getenv("NLB_PACKAGE_DIR"), os.Getenv("NLB_PKG_VERSION")
	if dir == "" || version == "" {
		t.Skip("NLB_PACKAGE_DIR and NLB_PKG_VERSION are not set: make test-packages builds the packages and runs this test")
	}
	bsdtar := tool(t, "bsdtar", "libarchive-tools")
	var want []string
	for _, a := range pkgArchs {
		want = append(want, "nlb_"+version+"-1_"+a.deb+".deb", "nlb-"+version+"-1."+a.rpm+".rpm", "nlb_"+version+"-r1_"+a.apk+".apk")
	}
	var got []string
	for _, ext := range []string{"deb", "rpm", "apk"} {
		m, _ := filepath.Glob(filepath.Join(dir, "*."+ext))
		for _, p := range m {
			got = append(got, filepath.Base(p))
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", dir, got, want)
	}

	for _, a := range pkgArchs {
		for _, name := range []string{"nlb_" + version + "-1_" + a.deb + ".deb", "nlb-" + version + "-1." + a.rpm + ".rpm", "nlb_" + version + "-r1_" + a.apk + ".apk"} {
			t.Run(name, func(t *testing.T) {
				x := t.TempDir()
				if out, err := runTool(t, bsdtar, "-x", "-p", "-f", filepath.Join(dir, name), "-C", x); err != nil {
					t.Fatalf("bsdtar -x %s: %v\n%s", name, err, out)
				}
				if strings.HasSuffix(name, ".deb") {
					// A .deb is an ar archive of control.tar and data.tar.
					data, _ := filepath.Glob(filepath.Join(x, "data.tar*"))
					if len(data) != 1 {
						t.Fatalf("%s: no data.tar", name)
					}
					y := t.TempDir()
					if out, err := runTool(t, bsdtar, "-x", "-p", "-f", data[0], "-C", y); err != nil {
						t.Fatalf("bsdtar -x %s: %v\n%s", data[0], err, out)
					}
					x = y
				}
				if strings.HasSuffix(name, ".apk") {
					// The package's metadata and scripts, beside the files.
					for _, f := range []string{".PKGINFO", ".post-install", ".post-deinstall"} {
						if err := os.Remove(filepath.Join(x, f)); err != nil {
							t.Errorf("%s: %v", name, err)
						}
					}
				}
				checkTree(t, x, nil, a.machine)
			})
		}
	}

	t.Run("install", func(t *testing.T) { installDeb(t, filepath.Join(dir, "nlb_"+version+"-1_amd64.deb")) })
}

// checkTree checks that the regular files under dir are exactly pkgFiles
// (apart from those skip accepts) with their modes and contents, and that
// /usr/bin/nlb is an ELF binary for machine, statically linked.
func checkTree(t *testing.T, dir string, skip func(rel string) bool, machine elf.Machine) {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		if skip != nil && skip(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		found = append(found, rel)
		want, ok := pkgFiles[rel]
		if !ok {
			t.Errorf("unexpected file %s", rel)
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() || info.Mode().Perm() != want.mode {
			t.Errorf("%s: mode %v, want a regular file %v", rel, info.Mode(), want.mode)
		}
		if want.src == "" {
			checkELF(t, p, machine)
			return nil
		}
		if !sameContent(t, p, filepath.Join(root, want.src)) {
			t.Errorf("%s differs from %s", rel, want.src)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for f := range pkgFiles {
		if !slices.Contains(found, f) {
			t.Errorf("%s is missing", f)
		}
	}
}

func checkELF(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: ELF machine %v, want %v", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: dynamically linked (PT_INTERP), want static (CGO_ENABLED=0)", path)
		}
	}
}

func sameContent(t *testing.T, a, b string) bool {
	t.Helper()
	ha, hb := fileHash(t, a), fileHash(t, b)
	return bytes.Equal(ha, hb)
}

func fileHash(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return h[:]
}

// installDeb installs deb into a scratch root with its own dpkg database
// and log, checks it, and purges it.
func installDeb(t *testing.T, deb string) {
	dpkg := tool(t, "dpkg", "dpkg")
	dpkgQuery := tool(t, "dpkg-query", "dpkg")
	// The machine's own dpkg database and log, which must stay as they are.
	hostState := func() []byte {
		var b []byte
		for _, p := range []string{"/var/lib/dpkg/status", "/var/log/dpkg.log"} {
			if _, err := os.Stat(p); err == nil {
				b = append(b, fileHash(t, p)...)
			}
		}
		return b
	}
	before := hostState()
	if _, err := os.Stat("/usr/bin/nlb"); err == nil {
		t.Log("note: /usr/bin/nlb exists on this machine; the test does not touch it")
	}

	scratch := t.TempDir()
	admin := filepath.Join(scratch, "var/lib/dpkg")
	for _, d := range []string{"updates", "info"} {
		if err := os.MkdirAll(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(admin, "status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// --force-script-chrootless: the scratch root has no shell to chroot
	// into; the scripts see DPKG_ROOT and leave the machine's systemd alone.
	dpkgArgs := []string{"--instdir=" + scratch, "--admindir=" + admin, "--log=" + filepath.Join(scratch, "dpkg.log"), "--force-script-chrootless"}
	if out, err := runTool(t, dpkg, append(dpkgArgs, "--install", deb)...); err != nil {
		t.Fatalf("dpkg --install: %v\n%s", err, out)
	}
	installed := func(rel string) bool {
		return rel == "/var/lib/dpkg" || rel == "/dpkg.log"
	}
	checkTree(t, scratch, installed, elf.EM_X86_64)

	out, err := runTool(t, dpkgQuery, "--admindir="+admin, "--showformat=${Status}\n${Conffiles}\n", "--show", "nlb")
	if err != nil {
		t.Fatalf("dpkg-query: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "install ok installed" {
		t.Errorf("status %q, want install ok installed", lines[0])
	}
	var conffiles, wantConf []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 {
			conffiles = append(conffiles, f[0])
		}
	}
	for f := range pkgFiles {
		if strings.HasPrefix(f, "/etc/") {
			wantConf = append(wantConf, f)
		}
	}
	if !sameSet(conffiles, wantConf) {
		t.Errorf("conffiles %q, want %q", conffiles, wantConf)
	}
	for _, s := range []string{"postinst", "postrm"} {
		if !sameContent(t, filepath.Join(admin, "info", "nlb."+s), filepath.Join(root, "dist/scripts/daemon-reload.sh")) {
			t.Errorf("the package's %s is not dist/scripts/daemon-reload.sh", s)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "dist/scripts/daemon-reload.sh")); err != nil {
		t.Fatal(err)
	} else if starts := regexp.MustCompile(`systemctl +(start|restart|enable|reload|try-restart)|deb-systemd-invoke|invoke-rc\.d`); starts.Match(b) {
		t.Errorf("dist/scripts/daemon-reload.sh starts or enables something: %q", starts.Find(b))
	}

	nlb := filepath.Join(scratch, "usr/bin/nlb")
	var units []string
	for f := range pkgFiles {
		if strings.HasSuffix(f, ".service") {
			units = append(units, filepath.Join(scratch, f))
		}
	}
	slices.Sort(units)
	verifyUnits(t, nlb, units...)
	if out, err := runTool(t, nlb, "version"); err != nil || !regexp.MustCompile(`^nlb \S+\n$`).MatchString(out) {
		t.Errorf("%s version: %v %q", nlb, err, out)
	}
	checkConfigs(t, nlb, filepath.Join(scratch, "etc/nlb"))

	if out, err := runTool(t, dpkg, append(dpkgArgs, "--purge", "nlb")...); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	err = filepath.WalkDir(scratch, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, scratch), "/")
		switch {
		case rel == "/" || rel == "/var" || rel == "/var/lib":
		case installed(rel):
			if e.IsDir() {
				return filepath.SkipDir
			}
		default:
			t.Errorf("left after the purge: %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, dpkgQuery, "--admindir="+admin, "--show", "nlb"); err == nil {
		t.Errorf("nlb still known to the scratch dpkg database after the purge: %s", out)
	}
	if !bytes.Equal(hostState(), before) {
		t.Error("the machine's dpkg status or log changed")
	}
}
