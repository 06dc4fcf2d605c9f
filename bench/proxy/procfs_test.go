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

func TestParseVmRSS(t *testing.T) {
	v, err := parseVmRSS([]byte("Name:\thaproxy\nVmHWM:\t  50000 kB\nVmRSS:\t   45424 kB\n"))
	if err != nil || v != 45424 {
		t.Errorf("parseVmRSS = %d, %v", v, err)
	}
	if _, err := parseVmRSS([]byte("Name: x\n")); err == nil {
		t.Error("missing VmRSS accepted")
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name holds a space and a parenthesis.
	in := "1234 (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 0 0\n"
	v, err := parseStatCPU([]byte(in))
	if err != nil || v != 300 {
		t.Errorf("parseStatCPU = %d, %v; want 300", v, err)
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1")); err == nil {
		t.Error("short stat accepted")
	}
}

func TestParseProcStatCPU(t *testing.T) {
	idle, total, ok := parseProcStatCPU([]byte("cpu  100 5 50 800 10 0 5 0 7 0\ncpu0 1 2 3 4\n"))
	if !ok || idle != 810 || total != 970 {
		t.Errorf("parseProcStatCPU = %v %v %v, want 810 970 true", idle, total, ok)
	}
	if _, _, ok := parseProcStatCPU([]byte("intr 1 2\n")); ok {
		t.Error("accepted a non-cpu line")
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
	if s.RSSKiB <= 0 || s.FDs <= 0 || s.kernelKiB() <= 0 {
		t.Errorf("implausible snapshot %+v", s)
	}
	if _, err := procCPUSeconds(os.Getpid()); err != nil {
		t.Error(err)
	}
}
