// Command image builds nlb's multi-arch OCI image without a container
// engine (`make image`): it cross-compiles a static nlb per platform, packs
// each into a one-layer image (/nlb, mode 0755, run as 65532:65532) and
// writes an OCI image layout directory plus a tar of it (what `ctr images
// import`, `skopeo copy oci-archive:` and k0s's airgap bundles take).
//
// The output is reproducible: file times and the image creation time come
// from SOURCE_DATE_EPOCH (default 0), and the binaries are built with
// -trimpath and without VCS stamping.
//
// Layout (OCI image-layout 1.0.0):
//
//	index.json  ─► image index (annotated with the reference)
//	                 └─► one image manifest per platform (platform in the descriptor)
//	                       ├─► config (os, architecture, variant, entrypoint, user, diff_ids)
//	                       └─► layer (tar+gzip: nlb)
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OCI media types and annotation keys.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	annotationRefName   = "org.opencontainers.image.ref.name"
	annotationCreated   = "org.opencontainers.image.created"
	annotationVersion   = "org.opencontainers.image.version"
	annotationSource    = "org.opencontainers.image.source"
	annotationTitle     = "org.opencontainers.image.title"
	annotationContainer = "io.containerd.image.name"

	// imageUser runs nlb unless the pod says otherwise (the controller
	// pod runs as root for its capabilities).
	imageUser = "65532:65532"
	// binaryPath is nlb inside the image.
	binaryPath = "/nlb"
	// source is the repository the image is built from.
	source = "https://github.com/nlb-dev/nlb"
)

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// platform is an OCI platform; its JSON is the descriptor's and config's.
type platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// String is the os/arch[/variant] form of p.
func (p platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// index is an OCI image index (also index.json).
type index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// manifest is an OCI image manifest.
type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// imageConfig is an OCI image configuration.
type imageConfig struct {
	Created      string `json:"created"`
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []history `json:"history"`
}

// history is one entry of an image configuration's history.
type history struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

// options are the settings of one image build.
type options struct {
	goCmd     string     // the go command
	pkg       string     // package to build
	version   string     // main.version and the version annotation
	ref       string     // image reference annotated on the index
	platforms []platform // platforms to build, in index order
	epoch     time.Time  // every timestamp
	out       string     // output directory: <out>/oci-layout and <out>/nlb-oci.tar
	log       io.Writer  // progress
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// run parses the flags and builds the image.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{log: stderr}
	fs.StringVar(&o.goCmd, "go", "go", "the go `command`")
	fs.StringVar(&o.pkg, "pkg", "github.com/nlb-dev/nlb/cmd/nlb", "`package` to build")
	fs.StringVar(&o.version, "version", "dev", "nlb `version` (main.version and the image annotation)")
	fs.StringVar(&o.ref, "ref", "", "image `reference` annotated on the index (default ghcr.io/nlb-dev/nlb:<version>)")
	plats := fs.String("platforms", "linux/amd64,linux/arm64,linux/arm/v7", "comma-separated `platforms`: linux/amd64, linux/arm64, linux/arm/v7")
	fs.StringVar(&o.out, "out", "bin/image", "output `directory`")
	epoch := fs.String("source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "`seconds` since 1970 for every timestamp (default $SOURCE_DATE_EPOCH, else 0)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.ref == "" {
		o.ref = "ghcr.io/nlb-dev/nlb:" + o.version
	}
	sec := int64(0)
	if *epoch != "" {
		var err error
		if sec, err = strconv.ParseInt(*epoch, 10, 64); err != nil || sec < 0 {
			return fmt.Errorf("--source-date-epoch %q: want non-negative seconds", *epoch)
		}
	}
	o.epoch = time.Unix(sec, 0).UTC()
	for _, s := range strings.Split(*plats, ",") {
		p, err := parsePlatform(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		o.platforms = append(o.platforms, p)
	}
	top, err := build(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.log, "image %s: %s (%s) in %s and %s\n", o.ref, top.Digest, platformList(o.platforms),
		filepath.Join(o.out, "oci-layout"), filepath.Join(o.out, "nlb-oci.tar"))
	return nil
}

// parsePlatform parses one of the supported platforms.
func parsePlatform(s string) (platform, error) {
	switch s {
	case "linux/amd64":
		return platform{OS: "linux", Architecture: "amd64"}, nil
	case "linux/arm64":
		return platform{OS: "linux", Architecture: "arm64"}, nil
	case "linux/arm/v7", "linux/arm":
		return platform{OS: "linux", Architecture: "arm", Variant: "v7"}, nil
	}
	return platform{}, fmt.Errorf("platform %q: want linux/amd64, linux/arm64 or linux/arm/v7", s)
}

// platformList joins ps with commas.
func platformList(ps []platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// goEnv is the environment that cross-compiles a static nlb for p, with
// the baseline instruction set of each architecture whatever the caller's
// GOAMD64, GOARM or GOARM64.
func goEnv(p platform) []string {
	env := []string{"CGO_ENABLED=0", "GOOS=" + p.OS, "GOARCH=" + p.Architecture}
	switch p.Architecture {
	case "amd64":
		env = append(env, "GOAMD64=v1")
	case "arm64":
		env = append(env, "GOARM64=v8.0")
	case "arm":
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	return env
}

// elfMachine is the ELF machine of a binary for p.
func elfMachine(p platform) elf.Machine {
	switch p.Architecture {
	case "amd64":
		return elf.EM_X86_64
	case "arm64":
		return elf.EM_AARCH64
	case "arm":
		return elf.EM_ARM
	}
	return elf.EM_NONE
}

// build writes the layout and its tar to o.out, replacing what was there,
// and returns the descriptor of the image index.
func build(ctx context.Context, o options) (descriptor, error) {
	if len(o.platforms) == 0 {
		return descriptor{}, errors.New("no platforms")
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return descriptor{}, fmt.Errorf("output: %w", err)
	}
	tmp, err := os.MkdirTemp(o.out, ".build-")
	if err != nil {
		return descriptor{}, fmt.Errorf("output: %w", err)
	}
	defer os.RemoveAll(tmp)
	lay := filepath.Join(tmp, "oci-layout")
	if err := os.MkdirAll(filepath.Join(lay, "blobs", "sha256"), 0o755); err != nil {
		return descriptor{}, fmt.Errorf("layout: %w", err)
	}
	created := o.epoch.Format(time.RFC3339)
	var manifests []descriptor
	for _, p := range o.platforms {
		bin, err := buildBinary(ctx, o, p, tmp)
		if err != nil {
			return descriptor{}, err
		}
		d, err := writeImage(lay, o, p, bin, created)
		if err != nil {
			return descriptor{}, fmt.Errorf("%s: %w", p, err)
		}
		fmt.Fprintf(o.log, "image: %s %s (%d bytes of nlb)\n", p, d.Digest, len(bin))
		manifests = append(manifests, d)
	}
	top, err := writeJSON(lay, mediaTypeIndex, index{
		SchemaVersion: 2,
		MediaType:     mediaTypeIndex,
		Manifests:     manifests,
		Annotations:   map[string]string{annotationCreated: created, annotationVersion: o.version, annotationSource: source},
	})
	if err != nil {
		return descriptor{}, err
	}
	tag := o.ref
	if i := strings.LastIndex(o.ref, ":"); i > strings.LastIndex(o.ref, "/") {
		tag = o.ref[i+1:]
	}
	top.Annotations = map[string]string{annotationRefName: tag, annotationContainer: o.ref}
	files := map[string][]byte{
		"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`),
	}
	if files["index.json"], err = json.Marshal(index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{top}}); err != nil {
		return descriptor{}, fmt.Errorf("index.json: %w", err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(lay, name), b, 0o644); err != nil {
			return descriptor{}, fmt.Errorf("layout: %w", err)
		}
	}
	tarPath := filepath.Join(tmp, "nlb-oci.tar")
	if err := tarDir(lay, tarPath, o.epoch); err != nil {
		return descriptor{}, err
	}
	for _, name := range []string{"oci-layout", "nlb-oci.tar"} {
		dst := filepath.Join(o.out, name)
		if err := os.RemoveAll(dst); err != nil {
			return descriptor{}, fmt.Errorf("output: %w", err)
		}
		if err := os.Rename(filepath.Join(tmp, name), dst); err != nil {
			return descriptor{}, fmt.Errorf("output: %w", err)
		}
	}
	return top, nil
}

// buildBinary cross-compiles nlb for p in dir, checks that the result is a
// static ELF executable for p's machine, and returns it.
func buildBinary(ctx context.Context, o options, p platform, dir string) ([]byte, error) {
	out := filepath.Join(dir, "nlb-"+strings.ReplaceAll(p.String(), "/", "-"))
	cmd := exec.CommandContext(ctx, o.goCmd, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X main.version="+o.version, "-o", out, o.pkg)
	cmd.Env = append(os.Environ(), goEnv(p)...)
	cmd.Stdout, cmd.Stderr = o.log, o.log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s for %s: %w", o.pkg, p, err)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if err := checkELF(bin, p); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return bin, nil
}

// checkELF checks that bin is a statically linked ELF executable for p.
func checkELF(bin []byte, p platform) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not ELF: %w", err)
	}
	defer f.Close()
	if f.Machine != elfMachine(p) || f.Type != elf.ET_EXEC {
		return fmt.Errorf("ELF %v %v, want an executable for %v", f.Type, f.Machine, elfMachine(p))
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			return errors.New("dynamically linked")
		}
	}
	if p.Architecture == "arm" {
		// e_flags sits at offset 36 of an ELF32 header; its top byte is
		// the ARM EABI version.
		if f.Class != elf.ELFCLASS32 || len(bin) < 40 {
			return fmt.Errorf("ELF class %v, want ELF32", f.Class)
		}
		if flags := binary.LittleEndian.Uint32(bin[36:40]); flags&0xff000000 != 0x05000000 {
			return fmt.Errorf("ELF flags %#x: want ARM EABI5", flags)
		}
	}
	return nil
}

// writeImage writes p's layer, config and manifest into the layout lay and
// returns the manifest's descriptor (with p as its platform).
func writeImage(lay string, o options, p platform, bin []byte, created string) (descriptor, error) {
	raw, err := layerTar(bin, o.epoch)
	if err != nil {
		return descriptor{}, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return descriptor{}, fmt.Errorf("layer: %w", err)
	}
	if _, err := zw.Write(raw); err != nil {
		return descriptor{}, fmt.Errorf("layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return descriptor{}, fmt.Errorf("layer: %w", err)
	}
	layer, err := writeBlob(lay, mediaTypeLayer, gz.Bytes())
	if err != nil {
		return descriptor{}, err
	}

	var cfg imageConfig
	cfg.Created, cfg.OS, cfg.Architecture, cfg.Variant = created, p.OS, p.Architecture, p.Variant
	cfg.Config.User = imageUser
	cfg.Config.Entrypoint = []string{binaryPath}
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = map[string]string{annotationVersion: o.version, annotationSource: source}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{digest(raw)}
	cfg.History = []history{{Created: created, CreatedBy: "nlb internal/cmd/image: " + binaryPath}}
	config, err := writeJSON(lay, mediaTypeConfig, cfg)
	if err != nil {
		return descriptor{}, err
	}

	m, err := writeJSON(lay, mediaTypeManifest, manifest{
		SchemaVersion: 2,
		MediaType:     mediaTypeManifest,
		Config:        config,
		Layers:        []descriptor{layer},
		Annotations:   map[string]string{annotationCreated: created, annotationVersion: o.version, annotationTitle: "nlb"},
	})
	if err != nil {
		return descriptor{}, err
	}
	m.Platform = &p
	return m, nil
}

// layerTar is the uncompressed layer: bin as /nlb, root-owned, mode 0755,
// modified at mtime.
func layerTar(bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(binaryPath, "/"),
		Mode:     0o755,
		Size:     int64(len(bin)),
		ModTime:  mtime,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// digest is b's sha256 digest in OCI form.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// writeBlob stores b in the layout lay and returns its descriptor.
func writeBlob(lay, mediaType string, b []byte) (descriptor, error) {
	d := descriptor{MediaType: mediaType, Digest: digest(b), Size: int64(len(b))}
	p := filepath.Join(lay, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:"))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return descriptor{}, fmt.Errorf("blob: %w", err)
	}
	return d, nil
}

// writeJSON stores v's JSON as a blob.
func writeJSON(lay, mediaType string, v any) (descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return descriptor{}, fmt.Errorf("%s: %w", mediaType, err)
	}
	return writeBlob(lay, mediaType, b)
}

// tarDir writes the files under dir to a tar at dst in name order, with
// fixed owners, modes and times, so that equal trees give equal tars.
func tarDir(dir, dst string, mtime time.Time) (err error) {
	var names []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	slices.Sort(names)
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("tar: %w", cerr)
		}
	}()
	tw := tar.NewWriter(f)
	for _, p := range names {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case st.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
		case st.Mode().IsRegular():
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, st.Size()
		default:
			return fmt.Errorf("tar: %s: not a file or directory", p)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("tar: %w", err)
			}
			if _, err := tw.Write(b); err != nil {
				return fmt.Errorf("tar: %w", err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	return nil
}
