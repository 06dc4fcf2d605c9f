package sklookup

// The generated sklookup_bpfel.{go,o} and sklookup_bpfeb.{go,o} are
// committed, so building nlb needs no clang. To regenerate after editing
// sklookup.c (clang 14 or newer: apt-get install -y clang llvm):
//
//	go generate ./ebpf/sklookup/

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -output-stem sklookup sklookup sklookup.c -- -I../headers -Wall -Werror
