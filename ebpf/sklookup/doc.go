// Package sklookup steers TCP connections for virtual IP:port pairs to a
// given listening socket with a BPF sk_lookup program attached to a network
// namespace (BPF_PROG_TYPE_SK_LOOKUP, Linux 5.9;
// Documentation/bpf/prog_sk_lookup.rst in the kernel tree).
//
// The program (sklookup.c) looks up the local address and port of every
// TCP connection request delivered locally in the namespace. When the pair
// is one of the configured VIP:port pairs, it assigns the connection to
// the listener stored in a SOCKMAP (bpf_sk_assign); otherwise it does
// nothing and the kernel's regular socket lookup runs. No address or port
// is rewritten: the accepted connection's local address is still VIP:port.
// Connections that originate on the same host go through the same lookup,
// so they are steered too.
//
// [Attach] loads the program and its maps, fills them and attaches the
// program to the namespace with a BPF link. The link is not pinned: it lives
// as long as a file descriptor refers to it, so [Link.Close] or the death of
// the process (even by SIGKILL) removes it and nothing stays behind in the
// kernel. Attach also detaches every other link of this program
// ([ProgramName]) in the namespace after its own is in place, so attaching
// again never leaves two.
//
// Only this package and its siblings under ebpf/ import cilium/ebpf
// (ARCHITECTURE.md). The generated sklookup_bpfel.{go,o} and
// sklookup_bpfeb.{go,o} are committed; building needs no clang.
package sklookup
