// Package xdplb is nlb's XDP load balancer: TCP to a configured VIP:port,
// IPv4 and IPv6, is sent to a backend by direct server return at layer 2,
// the IPVS "DR" method that k0s configures in keepalived's virtual servers
// (lb_kind DR). It replaces those IPVS virtual servers on the VRRP Master.
//
// # Data path
//
// The program (xdplb.c, BPF_PROG_TYPE_XDP) parses Ethernet, IPv4 (with its
// options: the IHL is honoured) or IPv6 (skipping hop-by-hop and
// destination options headers), and TCP. For a VIP:port it picks a backend:
//
//  1. the flow table first (for any packet but a SYN): from the 5-tuple
//     to the backend's slot, so that established flows keep their
//     backend when the backends change (a backend that is in no table
//     entry drains). It is an array shared by the CPUs of sets of 4
//     flows, the set chosen by the 5-tuple's hash; a set replaces its
//     least recently used flow. A new flow costs one array write (the
//     kernel's LRU hash, which evicts under its locks, cost twice the
//     whole program), and a flow whose packets change CPU keeps its
//     entry;
//  2. on a miss, the service's Maglev lookup table (Eisenbud et al.,
//     "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI
//     2016, §3.4; lb/maglev builds it), indexed by [FlowHash] % M: the
//     kernel's jhash2 over the 5-tuple, or over the client address alone
//     for a persistent service. The choice is stored in the flow table.
//
// A SYN that misses counts as a new flow; any other TCP packet that misses
// counts as re-hashed: the table evicted the flow, or another node was
// Master when it began. Maglev sends it to the same backend as long as the
// backends are unchanged and every node uses the same table and
// [Options.HashSeed], so neither eviction nor a failover breaks a
// connection.
//
// Forwarding rewrites the destination MAC to the backend's and the source
// MAC to ours and returns XDP_TX; the IP packet, and so every checksum, is
// untouched. The backends hold the VIP on a device that does not answer
// ARP for it (lo or a dummy, arp_ignore=1, arp_announce=2) and answer the
// client directly; they share the layer-2 segment with the Master and
// listen on the same port. A flow whose backend is this node goes up the
// local stack (XDP_PASS).
//
// # Defined behaviours
//
// Everything that is not TCP (or an ICMP error about TCP) to a VIP:port is
// passed (XDP_PASS) after a parse and one hash lookup. xdplb.c's header
// comment lists the rest; in short, each counted in [Events]:
//   - truncated or malformed headers: passed, the kernel drops them;
//   - fragments: passed (only the first fragment has ports; TCP to the VIP
//     uses DF and path MTU discovery);
//   - ICMP destination unreachable and ICMPv6 destination unreachable or
//     packet too big (RFC 1191, RFC 8201) quoting a VIP flow: sent to the
//     backend that owns the flow, which sent the packet and must learn the
//     path MTU;
//   - VIP traffic that reaches a node while it is not the VRRP Master
//     ([Objects.SetMaster] flips a map entry; the program is never
//     reloaded) is counted and forwarded by the same tables as the Master
//     would: only a client whose ARP entry still names this node sends it,
//     after a VIP move, or when two Backups took over at once and the later
//     gratuitous ARP fell within the client's ARP locktime (1 s). Passed to
//     the local stack, which holds the VIP as a real server, every flow of
//     another backend would be answered with an RST. Before Objects.SetMAC
//     nothing is forwarded;
//   - VIP traffic whose source MAC is a backend's (or one given to
//     [Objects.SetGuardMACs]): passed, never forwarded again. A frame that
//     a load balancer forwarded, or a backend's own connection to the VIP,
//     reaches the local stack, so even two Masters (a split brain) cannot
//     bounce a frame between them; this is the XDP form of k0s's fix for
//     IPVS DR routing loops (k0s#5178, PR #5831), which also runs the
//     virtual servers on the Master only;
//   - no usable backend: passed.
//
// # Attaching, and a datapath that outlives the process
//
// [Load] only loads the program (for BPF_PROG_RUN). [Attach] loads and
// attaches it to an interface in the first mode of [AttachOptions.Modes]
// that works: [ModeNative] (XDP in the driver), else [ModeGeneric] (XDP on
// the skb), else [ModeTCX], the same parse and choice compiled as a tcx
// ingress program (nlb_tc_lb: XDP_TX becomes a redirect to the egress of
// the same interface, XDP_PASS becomes TCX_NEXT). Native and generic XDP
// exclude each other and a second program, so an interface whose XDP hook
// another program holds (a CNI's prefilter) gets ModeTCX;
// [Datapath.Mode] and [Datapath.Skipped] say which mode runs and why the
// others did not.
//
// With [AttachOptions.PinDir] (a bpffs directory) the maps, the attached
// program and the link (link-<mode>) are pinned, so a crashed or SIGKILLed
// nlb leaves the program forwarding by the same tables, as IPVS rules
// outlive keepalived and Cilium's datapath its agent. The next Attach with
// the same directory adopts it: it loads a new program on the pinned maps,
// reads the state back from them (VRRP state, MAC, services with their
// backends' slots; a map the program does not use, nlb_be_addrs, keeps
// each slot's Addr), and switches the pinned link to the new program
// atomically (bpf_link_update): no flap, never two programs. Pinned maps
// of other sizes or another [Options.HashSeed] are refused, not mixed. A
// link pinned in a mode no longer wanted, or on another interface, is
// removed and the datapath attached afresh. [Datapath.Close] leaves a
// pinned datapath running (an unpinned one is detached);
// [Datapath.Remove] (a graceful stop) and [RemovePinned] (nlb no longer
// runs this mode) detach it and leave nothing pinned.
//
// # veth
//
// On a veth, frames sent with XDP_TX (or redirected into it) are
// dropped unless the peer device also runs an XDP program (the veth NAPI
// path is active only then; xdp-project/xdp-tutorial#167 and #399): a lab
// on veths attaches a trivial XDP_PASS program to each peer. Native XDP on
// a veth copies most packets into new buffers, so a veth lab measures
// behaviour, not NIC speed.
//
// A veth also hands its peer TCP packets whose checksum is still to be
// filled in (CHECKSUM_PARTIAL: the offload a NIC would do on transmit);
// native XDP on the receiving veth loses that state, so a frame it
// forwards with XDP_TX arrives with a wrong checksum and the backend drops
// it. Frames from a real wire carry complete checksums; a lab turns off
// the transmit checksum offload of its clients' veths (ethtool -K tx off),
// as internal/dsrlab does. The tcx program keeps the skb and its state.
//
// So on a veth [Attach] tries [ModeTCX] first unless told otherwise
// ([DefaultModes]): a controller in a container cannot count on its
// host's side of the veth, and needs no help from it that way.
//
// Only this package and its siblings under ebpf/ import cilium/ebpf
// (ARCHITECTURE.md). The generated xdplb_bpfel.{go,o} and
// xdplb_bpfeb.{go,o} are committed; building needs no clang, and
// `make generate-check` checks them against the C source.
package xdplb
