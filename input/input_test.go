package input

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v2"
)

// zeros is an endless reader that counts what it hands out.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	clear(p)
	z.n += int64(len(p))
	return len(p), nil
}

// TestReadAllBounded: an endless stream fails with a *TooLargeError after
// at most max+1 bytes; a stream of exactly max bytes is read whole.
func TestReadAllBounded(t *testing.T) {
	const max = 64 << 10
	z := &zeros{}
	_, err := ReadAll(z, "the stream", max)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != max || tl.Name != "the stream" {
		t.Fatalf("endless stream: %v, want a *TooLargeError", err)
	}
	if got, want := err.Error(), "the stream is larger than 64 KiB"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	// io.ReadAll asks for 512 bytes at first, then grows: the reads stop
	// at the limit, not at the end of some large buffer.
	if z.n > 2*max {
		t.Errorf("read %d bytes of an endless stream with a %d-byte limit", z.n, max)
	}
	b, err := ReadAll(io.LimitReader(&zeros{}, max), "exact", max)
	if err != nil || len(b) != max {
		t.Errorf("exactly max bytes: %d bytes, %v", len(b), err)
	}
}

// TestReadFileDevZero: reading /dev/zero, whose size is 0 and whose content
// never ends, fails promptly with the size error.
func TestReadFileDevZero(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	_, err := ReadFile("/dev/zero", MaxConfigSize)
	var tl *TooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("/dev/zero: %v, want a *TooLargeError", err)
	}
	if got, want := err.Error(), "/dev/zero is larger than 1 MiB"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// TestReadFile: a file at the limit is read, one byte more is refused, a
// directory and a missing file are plain errors.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(ok, bytes.Repeat([]byte("a"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, bytes.Repeat([]byte("a"), 1001), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(ok, 1000); err != nil || len(b) != 1000 {
		t.Errorf("file at the limit: %d bytes, %v", len(b), err)
	}
	var tl *TooLargeError
	if _, err := ReadFile(big, 1000); !errors.As(err, &tl) || err.Error() != big+" is larger than 1000 bytes" {
		t.Errorf("file above the limit: %v", err)
	}
	for _, name := range []string{dir, filepath.Join(dir, "missing")} {
		if _, err := ReadFile(name, 1000); err == nil || errors.As(err, &tl) {
			t.Errorf("%s: %v, want a read error", name, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1 MiB", 4 << 20: "4 MiB", 512 << 10: "512 KiB", 1000: "1000 bytes", 1<<20 + 1: "1048577 bytes"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestOneYAMLDocument(t *testing.T) {
	for _, tc := range []struct {
		name, doc, err string
	}{
		{"one", "a: 1\n", ""},
		{"leading separator", "---\na: 1\n", ""},
		{"trailing separator", "a: 1\n---\n", ""},
		{"trailing comment", "a: 1\n--- # end\n# nothing here\n", ""},
		{"document end marker", "a: 1\n...\n", ""},
		{"explicit null", "a: 1\n---\nnull\n", ""},
		{"json", `{"a": 1}`, ""},
		{"block scalar", "a: |\n  ---\n  x\n", ""},
		{"empty", "", ""},
		{"second document", "a: 1\n---\nb: 2\n", "document 2 is not empty"},
		{"third document", "a: 1\n---\n---\nb: 2\n", "document 3 is not empty"},
		{"second list", "a: 1\n---\n- x\n", "document 2 is not empty"},
		{"syntax error in the second", "a: 1\n---\n[bad\n", "YAML document 2: yaml: line 3"},
		{"syntax error in the first", "[bad\n", ""}, // the caller's decoder reports it
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := OneYAMLDocument([]byte(tc.doc))
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// FuzzOneYAMLDocument: any input gets an answer, never a panic, and a
// mapping followed by a non-empty second document is refused unless the
// first document cannot be decoded (the caller reports that).
func FuzzOneYAMLDocument(f *testing.F) {
	for _, s := range []string{"a: 1\n", "a: 1\n---\nb: 2\n", "---\n---\n", "a: |\n  x\n---\n[", "{\"a\": [1, 2]}", "? a\n: b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = OneYAMLDocument(b)
		two := append([]byte("a: 1\n---\nb: 2\n---\n"), b...)
		var v any
		if OneYAMLDocument(two) == nil && yaml.Unmarshal(two, &v) == nil {
			t.Errorf("second document accepted before %q", b)
		}
	})
}
