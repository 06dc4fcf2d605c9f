package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// hostPlatform is the platform of the test binary, when the builder
// supports it.
func hostPlatform(t *testing.T) platform {
	t.Helper()
	s := "linux/" + runtime.GOARCH
	if runtime.GOARCH == "arm" {
		s = "linux/arm/v7"
	}
	p, err := parsePlatform(s)
	if err != nil || runtime.GOOS != "linux" {
		t.Skipf("no image for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	return p
}

// readBlob reads the blob d names from the layout lay and checks its
// digest and size.
func readBlob(t *testing.T, lay string, d descriptor) []byte {
	t.Helper()
	hexDigest, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q: not sha256", d.Digest)
	}
	b, err := os.ReadFile(filepath.Join(lay, "blobs", "sha256", hexDigest))
	if err != nil {
		t.Fatal(err)
	}
	if digest(b) != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: digest %s size %d, descriptor size %d", d.Digest, digest(b), len(b), d.Size)
	}
	return b
}

// decodeStrict decodes JSON b into v, failing on unknown fields.
func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, b)
	}
}

// buildImage runs the image command (built without the race detector,
// which would make its gzip of three dozen megabytes take minutes) for p
// into out and returns the index.json descriptor of the image index.
func buildImage(t *testing.T, goCmd, builder string, p platform, out string) descriptor {
	t.Helper()
	cmd := exec.Command(builder, "--go", goCmd, "--version", "v0.0.0-test", "--ref", "example.com/nlb:v0.0.0-test",
		"--platforms", p.String(), "--source-date-epoch", "1700000000", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("image: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(out, "oci-layout", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var root index
	decodeStrict(t, b, &root)
	if root.SchemaVersion != 2 || root.MediaType != mediaTypeIndex || len(root.Manifests) != 1 {
		t.Fatalf("index.json %s", b)
	}
	return root.Manifests[0]
}

// TestImageHostArch builds the image for the host platform only and walks
// the layout: index.json → index → manifest → config and layer, whose only
// file is /nlb, a static executable for the platform's ELF machine. A
// second build must give the same bytes.
func TestImageHostArch(t *testing.T) {
	p := hostPlatform(t)
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	builder := filepath.Join(t.TempDir(), "image")
	cmd := exec.Command(goCmd, "build", "-o", builder, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	epoch := time.Unix(1700000000, 0).UTC()
	out := t.TempDir()
	d := buildImage(t, goCmd, builder, p, out)
	lay := filepath.Join(out, "oci-layout")

	if b, err := os.ReadFile(filepath.Join(lay, "oci-layout")); err != nil || string(b) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q %v", b, err)
	}
	if d.MediaType != mediaTypeIndex {
		t.Errorf("index.json names %+v, want an image index", d)
	}
	if d.Annotations[annotationRefName] != "v0.0.0-test" || d.Annotations[annotationContainer] != "example.com/nlb:v0.0.0-test" {
		t.Errorf("reference annotations %v", d.Annotations)
	}

	var idx index
	decodeStrict(t, readBlob(t, lay, d), &idx)
	if idx.SchemaVersion != 2 || idx.MediaType != mediaTypeIndex || len(idx.Manifests) != 1 {
		t.Fatalf("image index %+v", idx)
	}
	md := idx.Manifests[0]
	if md.MediaType != mediaTypeManifest || md.Platform == nil || *md.Platform != p {
		t.Fatalf("manifest descriptor %+v, want platform %v", md, p)
	}

	var m manifest
	decodeStrict(t, readBlob(t, lay, md), &m)
	if m.SchemaVersion != 2 || m.MediaType != mediaTypeManifest || m.Config.MediaType != mediaTypeConfig || len(m.Layers) != 1 || m.Layers[0].MediaType != mediaTypeLayer {
		t.Fatalf("manifest %+v", m)
	}

	var cfg imageConfig
	decodeStrict(t, readBlob(t, lay, m.Config), &cfg)
	if cfg.OS != p.OS || cfg.Architecture != p.Architecture || cfg.Variant != p.Variant {
		t.Errorf("config platform %s/%s/%s, want %v", cfg.OS, cfg.Architecture, cfg.Variant, p)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/nlb"}) || cfg.Config.User != "65532:65532" {
		t.Errorf("entrypoint %q user %q", cfg.Config.Entrypoint, cfg.Config.User)
	}
	if cfg.Created != "2023-11-14T22:13:20Z" {
		t.Errorf("created %q, want SOURCE_DATE_EPOCH's", cfg.Created)
	}

	gz := readBlob(t, lay, m.Layers[0])
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootFS.Type != "layers" || !slices.Equal(cfg.RootFS.DiffIDs, []string{digest(raw)}) {
		t.Errorf("rootfs %+v, layer diff id %s", cfg.RootFS, digest(raw))
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != "nlb" || hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o755 || hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch) {
		t.Errorf("layer entry %+v, want nlb 0755 root, modified at the epoch", hdr)
	}
	bin, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("layer has more than nlb: %v", err)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elfMachine(p) || f.Type != elf.ET_EXEC {
		t.Errorf("ELF %v %v, want %v executable", f.Type, f.Machine, elfMachine(p))
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("nlb has an interpreter: not static")
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("nlb has a symbol table: not built with -s")
	}

	// The binary runs, with the version the image carries.
	exe := filepath.Join(t.TempDir(), "nlb")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if v, err := exec.Command(exe, "version").Output(); err != nil || string(v) != "nlb v0.0.0-test\n" {
		t.Errorf("nlb version: %q %v", v, err)
	}

	tarball, err := os.ReadFile(filepath.Join(out, "nlb-oci.tar"))
	if err != nil {
		t.Fatal(err)
	}
	checkLayoutTar(t, tarball, lay)

	// Reproducible: a second build gives the same layout and tar.
	out2 := t.TempDir()
	d2 := buildImage(t, goCmd, builder, p, out2)
	tarball2, err := os.ReadFile(filepath.Join(out2, "nlb-oci.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if d2.Digest != d.Digest || !bytes.Equal(tarball, tarball2) {
		t.Errorf("not reproducible: index %s then %s, tars equal %v", d.Digest, d2.Digest, bytes.Equal(tarball, tarball2))
	}
}

// checkLayoutTar checks that the tar holds exactly the layout's files, in
// name order, root-owned.
func checkLayoutTar(t *testing.T, b []byte, lay string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: owner %d:%d", hdr.Name, hdr.Uid, hdr.Gid)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		disk, err := os.ReadFile(filepath.Join(lay, filepath.FromSlash(hdr.Name)))
		if err != nil || !bytes.Equal(body, disk) {
			t.Errorf("%s: differs from the layout (%v)", hdr.Name, err)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("tar order %q", names)
	}
	for _, want := range []string{"oci-layout", "index.json", "blobs/", "blobs/sha256/"} {
		if !slices.Contains(names, want) {
			t.Errorf("tar lacks %s: %q", want, names)
		}
	}
}

// TestPlatforms checks the platform table: the go environment and ELF
// machine of each supported platform, and that others are refused.
func TestPlatforms(t *testing.T) {
	for s, want := range map[string]struct {
		env     []string
		machine elf.Machine
	}{
		"linux/amd64":  {[]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1"}, elf.EM_X86_64},
		"linux/arm64":  {[]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "GOARM64=v8.0"}, elf.EM_AARCH64},
		"linux/arm/v7": {[]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"}, elf.EM_ARM},
	} {
		p, err := parsePlatform(s)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != s || !slices.Equal(goEnv(p), want.env) || elfMachine(p) != want.machine {
			t.Errorf("%s: %v env %q machine %v", s, p, goEnv(p), elfMachine(p))
		}
	}
	for _, s := range []string{"", "linux/386", "windows/amd64", "linux/arm/v6", "linux/amd64 "} {
		if _, err := parsePlatform(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if err := checkELF([]byte("#!/bin/sh\n"), platform{OS: "linux", Architecture: "amd64"}); err == nil {
		t.Error("a script passed the ELF check")
	}
}
