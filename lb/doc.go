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
// Each direction of a connection starts in message mode: it waits in Go's
// netpoller holding nothing, then reads once into a 16 KiB buffer from a
// pool and writes it on, as HAProxy does for small payloads: three system
// calls per request or response. A read that fills the buffer means a bulk
// transfer, and the direction switches to io.Copy between the bare
// *net.TCPConn values returned by accept and dial (the source inside an
// *io.LimitedReader), so Go uses splice(2); nothing ever wraps a
// connection. The splice runs until the source goes quiet, so Go's 1 MiB
// pipe is taken from its pool only while data flows. Byte counts come from
// the reads, writes and io.Copy results. A direction quiet for 250 ms gives
// up its goroutine and parks its socket in an epoll set of the proxy's own;
// an idle proxied connection holds two sockets and a few hundred bytes of
// Go memory, no goroutine, no pipe and no buffer. Half-closes are passed
// through; a reset on one side becomes a reset on the other.
//
// # Balancing and failures
//
// Round robin (atomic counter) or least connections (power of two
// choices). A dial that is refused or exceeds ConnectTimeout (250 ms, like
// Envoy's in k0s) marks the backend suspect at once and the next backend is
// tried; ineligible backends are tried last, so a client is refused only
// when no backend answers. Active checks (TCP connect, TLS handshake or
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
// Metrics are nlb_proxy_*; see `nlb proxy -h` for the list.
package lb
