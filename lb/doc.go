// Package lb is nlb's userspace L4 (TCP) load balancer, the replacement for
// the Envoy (NLLB) and tcpproxy (CPLB) proxies k0s runs in front of
// kube-apiserver.
//
// Typical use (cmd/nlb does this for `nlb proxy`):
//
//	cfg, err := lb.LoadFile("proxy.yaml") // or build a Config
//	p, err := lb.New(cfg, lb.Options{Logger: log, Registerer: reg})
//	err = p.Listen(ctx)
//	go http.ListenAndServe("127.0.0.1:9901", p.AdminHandler(reg))
//	err = p.Serve(ctx) // until ctx ends, then a graceful shutdown
//
// # Data path
//
// Connections are served by event loops, as HAProxy serves them: one per
// CPU, each an epoll set (edge-triggered) holding the
// listening sockets and both sockets of its connections, waited on in Go's
// netpoller. A loop accepts with accept4(2), connects to the backend with
// a non-blocking connect(2) of its own and moves bytes with read, write and
// splice(2) on the raw descriptors: no goroutine, net.Conn or Go netpoller
// registration per connection, no system call beyond those the work
// needs, and fewer TCP segments than HAProxy sends (delayed ACKs, the FIN
// with the last bytes, the handshake's ACK with the first). Each
// direction starts in message mode (one read into the loop's 16 KiB
// buffer, one write); a read that fills the buffer switches it to
// splicing through a pipe from the loop's pool, held only while bytes are
// in flight. An idle proxied connection holds two sockets, two epoll
// entries and a few hundred bytes: no goroutine, no pipe and no buffer.
// Half-closes are passed through; a reset on one side becomes a reset on
// the other. Backends given by host name, and every backend when
// Options.Dial is set, are dialled through Go in a goroutine instead.
// datapath.go explains the details.
//
// # Balancing and failures
//
// Round robin (atomic counter) or least connections (power of two
// choices). A dial that is refused or exceeds ConnectTimeout (250 ms, like
// Envoy's in k0s) marks the backend suspect at once and the next backend is
// tried; ineligible backends are tried last. When every backend failed, the
// client waits a short random pause and tries them all again, until one
// answers or its DialBudget (3 s from the accept) is spent: a burst of
// clients to a backend that accepts slowly waits instead of being refused,
// while a dead host still costs one ConnectTimeout per round. Active checks (TCP connect, TLS handshake or
// HTTPS GET /readyz with optional CA and client certificate) apply rise and
// fall thresholds; the defaults (every 500 ms, timeout 250 ms, fall 3)
// find a dead backend within 2 s. When no backend is healthy the proxy
// fails open to all known backends, as k0s does, and reports it. Removed
// and unhealthy backends get no new connections; their connections are
// closed after DrainPeriod, spread over DrainStagger to avoid a reconnect
// storm (envoy#44419).
//
// TCP keepalive and TCP_USER_TIMEOUT are set on both sides so that dead
// peers are found: on the client side once, on the listening socket, whose
// connections inherit them; on the backend side when a connection is
// 250 ms old, as they act only after seconds; an optional IdleTimeout closes quiet connections; past
// MaxConnections new clients are closed, logged and counted.
//
// Loopback legs (a backend on a loopback address; a listener on one, as
// in client mode on workers) use LoopbackCongestionControl, "reno" by
// default, instead of the system's TCP congestion control. A pacing
// algorithm such as BBR without an fq qdisc arms a kernel timer for every
// burst it sends; on loopback, where there is no queue to protect, that
// is pure cost (about a sixth of the bulk throughput of a 2-core machine
// in `make bench-proxy`). Legs to other addresses keep the system's
// algorithm.
//
// Metrics are nlb_proxy_*; see `nlb proxy -h` for the list.
package lb
