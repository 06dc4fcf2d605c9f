package main

import (
	"os"
	"testing"
)

const meminfo = `MemTotal:       24684116 kB
MemFree:        22978860 kB
MemAvailable:   23794056 kB
Buffers:            2200 kB
Cached:           375112 kB
AnonPages:        280544 kB
Slab:              93616 kB
HugePages_Total:       0
`

func TestParseMeminfo(t *testing.T) {
	m, err := parseMeminfo([]byte(meminfo))
	if err != nil {
		t.Fatal(err)
	}
	if m["MemTotal"] != 24684116 || m["Slab"] != 93616 || m["HugePages_Total"] != 0 {
		t.Errorf("parsed %v", m)
	}
	s := memSnapshot{Meminfo: m}
	if got, want := s.kernelKiB(), int64(24684116-22978860-280544-2200-375112); got != want {
		t.Errorf("kernelKiB = %d, want %d", got, want)
	}
	if _, err := parseMeminfo([]byte("MemTotal: 1 kB\n")); err == nil {
		t.Error("meminfo without MemFree accepted")
	}
	if _, err := parseMeminfo([]byte("MemTotal: x kB\n")); err == nil {
		t.Error("bad number accepted")
	}
}

func TestParseSockstat(t *testing.T) {
	in := `sockets: used 16
TCP: inuse 54660 orphan 0 tw 36590 alloc 54660 mem 218
UDP: inuse 0 mem 0
`
	s, err := parseSockstat([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if s.InUse != 54660 || s.MemPages != 218 {
		t.Errorf("parsed %+v", s)
	}
	for _, bad := range []string{"sockets: used 1\n", "TCP: inuse 1 orphan 0\n", "TCP: inuse x mem 1\n"} {
		if _, err := parseSockstat([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestReadSelf checks the /proc readers on this process, where /proc exists.
func TestReadSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	s, err := readMemSnapshot(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSKiB <= 0 || s.FDs.FDs <= 0 || s.kernelKiB() <= 0 {
		t.Errorf("implausible snapshot %+v", s)
	}
}

func TestKmallocSize(t *testing.T) {
	for n, want := range map[int64]int64{0: 0, 1: 8, 90: 96, 170: 192, 640: 1024, 8192: 8192, 10240: 16384, 16384: 16384, 16385: 32768} {
		if got := kmallocSize(n); got != want {
			t.Errorf("kmallocSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestParseSlabinfo(t *testing.T) {
	in := `slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
TCP                   67    117   2432   13    8 : tunables    0    0    0 : slabdata      9      9      0
filp                2394   2394    256   21    1 : tunables    0    0    0 : slabdata    114    114      0
`
	s := parseSlabinfo([]byte(in), defaultSlabSizes())
	want := defaultSlabSizes()
	want.tcp, want.filp = 2432, 256
	if s != want {
		t.Errorf("parseSlabinfo = %+v, want %+v", s, want)
	}
}

func TestCountEpollWatches(t *testing.T) {
	in := "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\ntfd:        8 events:     2019 data: 8  pos:0 ino:91be4 sdev:f\ntfd:        9 events:       19 data: 9  pos:0 ino:91be5 sdev:f\n"
	if got := countEpollWatches([]byte(in)); got != 2 {
		t.Errorf("countEpollWatches = %d, want 2", got)
	}
}

func TestKernelBytes(t *testing.T) {
	s := slabSizes{tcp: 2000, sockInode: 800, dentry: 200, filp: 200, epi: 100, inode: 600}
	// One proxied connection in a Go splice proxy that keeps its pipes:
	// 2 sockets, 2 pipes of 1 MiB (4 fds), 6 fds in epoll.
	u := fdUsage{FDs: 6, Sockets: 2, PipeFDs: 4, EpollWatch: 6, Pipes: []pipeState{{Size: 1 << 20}, {Size: 1 << 20, Queued: 1}}}
	ring := int64(16384) // 256 pipe_buffers of 40 B
	want := 2*(2000+800+200) + 6*200 + 6*100 + 2*(600+200+pipeInodeInfoSize+ring) + 4096
	if got := u.kernelBytes(s); got != want {
		t.Errorf("kernelBytes = %d, want %d", got, want)
	}
}
