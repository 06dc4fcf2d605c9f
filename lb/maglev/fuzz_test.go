package maglev

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzNew feeds New newline-separated keys, a size picked from Sizes (or
// an arbitrary one) and a health bit mask, and checks every table it
// builds against the package's promises: M entries, each backend's
// ⌊M/N⌋ or ⌈M/N⌉, the same table for the keys in reverse order, and
// health changing only the unhealthy backends' slots, never to a down
// backend. Errors must be the package's.
func FuzzNew(f *testing.F) {
	f.Add([]byte("192.0.2.11:6443\n192.0.2.12:6443\n192.0.2.13:6443"), uint32(6), uint64(0b010))
	f.Add([]byte("192.0.2.11:6443"), uint32(0), uint64(1))
	f.Add([]byte(""), uint32(6), uint64(0))
	f.Add([]byte("a\na"), uint32(6), uint64(0))
	f.Add([]byte("a\n\nb"), uint32(1<<31|4099), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, sizeSel uint32, down uint64) {
		var backends []string
		if len(data) > 0 {
			backends = strings.Split(string(data), "\n")
		}
		size := Sizes()[int(sizeSel%uint32(len(Sizes())))]
		if sizeSel&(1<<31) != 0 {
			size = int(sizeSel &^ (1 << 31) % 200000) // arbitrary, mostly refused
		}
		tb, err := New(backends, size)
		if err != nil {
			if tb != nil {
				t.Fatal("a table with an error")
			}
			if !errors.Is(err, ErrNoBackends) && !errors.Is(err, ErrSize) && !errors.Is(err, ErrTooManyBackends) && !errors.Is(err, ErrKey) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		n, m := len(backends), tb.Size()
		if !slices.Contains(Sizes(), m) || n > MaxBackends(m) {
			t.Fatalf("accepted %d backends at M=%d", n, m)
		}
		got := tb.Backends()
		if len(got) != n || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != n {
			t.Fatalf("Backends() = %q from %q", got, backends)
		}
		full := tb.Entries(nil)
		if len(full) != m {
			t.Fatalf("%d entries, want %d", len(full), m)
		}
		for _, c := range full.Count(n) {
			if c != m/n && c != (m+n-1)/n {
				t.Fatalf("a backend holds %d of %d entries among %d", c, m, n)
			}
		}
		rev := slices.Clone(backends)
		slices.Reverse(rev)
		if !slices.Equal(mustNew(t, rev, m).Entries(nil), full) {
			t.Fatal("reversed keys give another table")
		}
		isUp := func(i uint32) bool { return i >= 64 || down&(1<<i) == 0 }
		h := tb.Entries(func(k string) bool {
			i, _ := tb.Index(k)
			return isUp(uint32(i))
		})
		anyUp := slices.ContainsFunc(full, isUp)
		for s := range full {
			switch {
			case !anyUp:
				if h[s] != NoBackend {
					t.Fatalf("none healthy but slot %d is %d", s, h[s])
				}
			case isUp(full[s]) && h[s] != full[s]:
				t.Fatalf("slot %d of healthy %d moved to %d", s, full[s], h[s])
			case !isUp(h[s]) || h[s] == NoBackend:
				t.Fatalf("slot %d on %d, down or none", s, h[s])
			}
		}
	})
}
