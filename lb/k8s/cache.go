package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// maxCacheSize bounds what LoadCache reads: a list of a few API servers
// takes well under a kilobyte.
const maxCacheSize = 1 << 20

// cacheFile is the cache file's format:
//
//	{"backends": ["192.0.2.10:6443", "[2001:db8::10]:6443"]}
type cacheFile struct {
	Backends []string `json:"backends"`
}

// LoadCache reads a cache file written by Discovery and returns its list,
// sorted and without duplicates. It returns an error for a missing file (one
// that matches fs.ErrNotExist), a file that is not the cache's JSON, an entry
// that is not ip:port with a specified, zoneless address and a non-zero port,
// and an empty list, which is never applied.
func LoadCache(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("k8s: cache: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCacheSize+1))
	if err != nil {
		return nil, fmt.Errorf("k8s: cache: %w", err)
	}
	if len(b) > maxCacheSize {
		return nil, fmt.Errorf("k8s: cache %s: larger than %d bytes", path, maxCacheSize)
	}
	list, err := parseCache(b)
	if err != nil {
		return nil, fmt.Errorf("k8s: cache %s: %w", path, err)
	}
	return list, nil
}

// parseCache decodes a cache file's contents.
func parseCache(b []byte) ([]netip.AddrPort, error) {
	var c cacheFile
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	if len(c.Backends) == 0 {
		return nil, errors.New("no backends")
	}
	out := make([]netip.AddrPort, 0, len(c.Backends))
	for _, s := range c.Backends {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, err
		}
		a := ap.Addr()
		if ap.Port() == 0 || a.Zone() != "" || a.IsUnspecified() {
			return nil, fmt.Errorf("invalid backend %q", s)
		}
		out = append(out, ap)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out), nil
}

// writeCache replaces the file at path with list: it writes a temporary file
// (mode 0600) in the same directory, syncs it and renames it over path, so a
// reader sees the old list or the new one, never a part.
func writeCache(path string, list []netip.AddrPort) (err error) {
	b, err := json.MarshalIndent(cacheFile{Backends: addrStrings(list)}, "", "\t")
	if err != nil {
		return fmt.Errorf("k8s: cache: %w", err)
	}
	b = append(b, '\n')
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("k8s: cache: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	// CreateTemp already uses 0600; Chmod guards against a future change.
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("k8s: cache: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("k8s: cache: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("k8s: cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("k8s: cache: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("k8s: cache: %w", err)
	}
	// Make the rename durable; a failure here leaves a valid file.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Addrs returns the backends as host:port strings, as lb.Proxy.SetBackends
// takes them (IPv6 in brackets). A non-zero port replaces each backend's
// port; 0 keeps it.
func Addrs(b []netip.AddrPort, port uint16) []string {
	out := make([]string, 0, len(b))
	for _, ap := range b {
		if port != 0 {
			ap = netip.AddrPortFrom(ap.Addr(), port)
		}
		out = append(out, ap.String())
	}
	return out
}

// addrStrings is Addrs without a port override, for logs and the cache.
func addrStrings(b []netip.AddrPort) []string { return Addrs(b, 0) }
