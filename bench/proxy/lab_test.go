package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestReservedPorts: every port the bench listens on is reserved, so that
// no outgoing connection of the whole-range port setting holds it when a
// server or proxy binds it.
func TestReservedPorts(t *testing.T) {
	reserved := func(port int) bool {
		for _, r := range strings.Split(reservedPorts(), ",") {
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				t.Fatalf("reservedPorts() = %q: not a port list", reservedPorts())
			}
			if a <= port && port <= b {
				return true
			}
		}
		return false
	}
	ports := []int{portHTTP, portProxy, portBulkNLB}
	for i := range bulkStreams {
		ports = append(ports, portIperf+i, portBulkHAP+i)
	}
	for _, p := range ports {
		if !reserved(p) {
			t.Errorf("port %d is not in ip_local_reserved_ports %q", p, reservedPorts())
		}
	}
}
