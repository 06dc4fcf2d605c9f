package nllblab

import (
	"testing"
)

func TestParseSmaps(t *testing.T) {
	const smaps = `00400000-00c00000 r-xp 00000000 08:01 123 /work/bin/nlb
Size:               8192 kB
Rss:                6000 kB
Anonymous:             0 kB
Swap:                  0 kB
00c00000-01400000 r--p 00800000 08:01 123 /work/bin/nlb
Rss:                5000 kB
Anonymous:             0 kB
01400000-01500000 rw-p 01000000 08:01 123 /work/bin/nlb
Rss:                 300 kB
Anonymous:           100 kB
01500000-01600000 rw-p 00000000 00:00 0
Rss:                 200 kB
Anonymous:           200 kB
c000000000-c004000000 rw-p 00000000 00:00 0
Rss:                2000 kB
Anonymous:          2000 kB
Swap:                 12 kB
7ffd0000-7ffd2000 rw-p 00000000 00:00 0                          [stack]
Rss:                  16 kB
Anonymous:            16 kB
VmFlags: rd wr mr mw me gd ac
`
	got := parseSmaps([]byte(smaps), "nlb")
	want := []Mapping{
		{Name: "binary r-xp", Rss: 6000},
		{Name: "binary r--p", Rss: 5000},
		{Name: "anon rw-p", Rss: 2200, Anonymous: 2200, Swap: 12},
		{Name: "binary rw-p", Rss: 300, Anonymous: 100},
		{Name: "[stack]", Rss: 16, Anonymous: 16},
	}
	if len(got) != len(want) {
		t.Fatalf("parseSmaps = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
