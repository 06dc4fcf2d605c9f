package k8s

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadCache(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, data string
		want       []string // nil: an error
	}{
		{"sorted and de-duplicated", `{"backends":["[2001:db8::1]:6443","192.0.2.2:6443","192.0.2.1:6443","192.0.2.2:6443"]}`,
			[]string{"192.0.2.1:6443", "192.0.2.2:6443", "[2001:db8::1]:6443"}},
		{"unknown fields are kept for later versions", `{"version":2,"backends":["192.0.2.1:8132"]}`, []string{"192.0.2.1:8132"}},
		{"empty list", `{"backends":[]}`, nil},
		{"no list", `{}`, nil},
		{"null", `null`, nil},
		{"not JSON", `192.0.2.1:6443`, nil},
		{"empty file", ``, nil},
		{"no port", `{"backends":["192.0.2.1"]}`, nil},
		{"port 0", `{"backends":["192.0.2.1:0"]}`, nil},
		{"host name", `{"backends":["api.example.com:6443"]}`, nil},
		{"unspecified", `{"backends":["0.0.0.0:6443"]}`, nil},
		{"zone", `{"backends":["[fe80::1%eth0]:6443"]}`, nil},
		{"one bad entry spoils the file", `{"backends":["192.0.2.1:6443","x"]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(file, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadCache(file)
			if tc.want == nil {
				if err == nil || !strings.HasPrefix(err.Error(), "k8s: cache ") {
					t.Errorf("LoadCache = %v, %v; want a k8s: cache error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := aps(tc.want...); !slices.Equal(got, want) {
				t.Errorf("LoadCache = %v, want %v", got, want)
			}
		})
	}
	if _, err := LoadCache(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxCacheSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCache(big); err == nil {
		t.Error("an oversized file was accepted")
	}
}

func TestWriteCache(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cache.json")
	// An old file, world-readable, is replaced by a 0600 one.
	if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := aps("192.0.2.1:6443", "[2001:db8::1]:6443")
	if err := writeCache(file, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCache(file)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("LoadCache = %v, %v; want %v", got, err, want)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	if wantText := "{\n\t\"backends\": [\n\t\t\"192.0.2.1:6443\",\n\t\t\"[2001:db8::1]:6443\"\n\t]\n}\n"; string(b) != wantText {
		t.Errorf("file:\n%s\nwant:\n%s", b, wantText)
	}
	// A failed write leaves nothing behind.
	if err := writeCache(filepath.Join(dir, "no", "such", "dir"), want); err == nil || !strings.HasPrefix(err.Error(), "k8s: cache: ") {
		t.Errorf("write into a missing directory: %v", err)
	}
	if err := writeCache(filepath.Join(dir, "sub"), want); err != nil {
		t.Fatal(err)
	}
	if err := writeCache(filepath.Join(dir, "sub"), want); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Errorf("directory holds %v, want cache.json and sub only", ents)
	}
}

func TestAddrs(t *testing.T) {
	b := aps("192.0.2.1:6443", "[2001:db8::1]:6443")
	if got, want := Addrs(b, 0), []string{"192.0.2.1:6443", "[2001:db8::1]:6443"}; !slices.Equal(got, want) {
		t.Errorf("Addrs(b, 0) = %v, want %v", got, want)
	}
	if got, want := Addrs(b, 8132), []string{"192.0.2.1:8132", "[2001:db8::1]:8132"}; !slices.Equal(got, want) {
		t.Errorf("Addrs(b, 8132) = %v, want %v", got, want)
	}
	if got := Addrs(nil, 1); len(got) != 0 {
		t.Errorf("Addrs(nil) = %v", got)
	}
	if b[0] != netip.MustParseAddrPort("192.0.2.1:6443") {
		t.Error("Addrs changed its argument")
	}
}

// FuzzLoadCache checks that LoadCache never panics and that what it accepts
// is a valid list that survives a write and a load.
func FuzzLoadCache(f *testing.F) {
	for _, s := range []string{
		`{"backends":["192.0.2.1:6443","[2001:db8::1]:6443"]}`,
		`{"backends":["192.0.2.1:6443","192.0.2.1:6443"]}`,
		`{"backends":[]}`,
		`{"backends":["[::ffff:192.0.2.1]:6443"]}`,
		`{"backends":["[fe80::1%eth0]:6443"]}`,
		`{"backends":[1]}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	in := filepath.Join(dir, "in")
	out := filepath.Join(dir, "out")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(in, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadCache(in)
		if err != nil {
			if got != nil {
				t.Fatalf("LoadCache returned %v with error %v", got, err)
			}
			return
		}
		if len(got) == 0 {
			t.Fatal("LoadCache accepted an empty list")
		}
		for i, ap := range got {
			if !ap.IsValid() || ap.Port() == 0 || ap.Addr().Zone() != "" || ap.Addr().IsUnspecified() {
				t.Fatalf("LoadCache accepted %v", ap)
			}
			if i > 0 && got[i-1].Compare(ap) >= 0 {
				t.Fatalf("LoadCache result not sorted and unique: %v", got)
			}
		}
		if err := writeCache(out, got); err != nil {
			t.Fatal(err)
		}
		again, err := LoadCache(out)
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("round trip: %v, %v; want %v", again, err, got)
		}
	})
}
