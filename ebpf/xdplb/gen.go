package xdplb

// The generated xdplb_bpfel.{go,o} and xdplb_bpfeb.{go,o} are committed, so
// building nlb needs no clang. To regenerate after editing xdplb.c (clang 14
// or newer: apt-get install -y clang llvm; `make generate-check` checks that
// the committed files are what the source gives):
//
//	go generate ./ebpf/xdplb/

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -output-stem xdplb -type config -type service_key -type service -type backend -type flow_key -type flow -type flow_set -type mac_key -type counters xdplb xdplb.c -- -I../headers -Wall -Werror
