// Package config loads nlb's configuration, which is k0s's own: the
// spec.network.controlPlaneLoadBalancing (CPLB) and
// spec.network.nodeLocalLoadBalancing (NLLB) sections of a k0s
// ClusterConfig, with k0s's field names, defaults and validation rules
// (k0s pkg/apis/k0s/v1beta1/cplb.go, nllb.go, api.go and
// clusterconfig_types.go), plus a few optional nlb additions.
//
// # Input forms
//
// Load accepts one YAML or JSON document of at most 1 MiB (a second,
// non-empty document is an error, not ignored) and recognises its shape by
// the top-level keys (see Form):
//
//   - a k0s ClusterConfig (k0s.yaml): apiVersion, kind, metadata, spec;
//   - a k0sctl Cluster whose spec.k0s.config is the ClusterConfig (apiVersion
//     k0sctl.k0sproject.io/..., or a snippet with spec.k0s);
//   - the body of spec (top-level network/api) or of spec.network
//     (top-level controlPlaneLoadBalancing/nodeLocalLoadBalancing);
//   - the controlPlaneLoadBalancing section alone (top-level enabled, type,
//     keepalived).
//
// Everything k0s has outside the sections nlb owns is accepted and ignored
// (spec.storage, spec.network.provider, ...), except that spec.api.port,
// spec.api.externalAddress and spec.konnectivity.agentPort are read. Inside controlPlaneLoadBalancing and
// nodeLocalLoadBalancing decoding is strict: an unknown or mis-cased field
// is an error, as is a value of the wrong type. Duplicate YAML keys are
// errors everywhere.
//
// # Field paths
//
// Every problem is reported at once, in a *ValidationError whose Error
// text has one "config: <path>: <message>" line per problem, the first 20
// of them, then "config: ... and N more problems". Paths use
// Kubernetes field-path syntax and are relative to the document given:
// "spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[1].authPass"
// for a ClusterConfig, "spec.k0s.config.spec.network..." for a k0sctl
// file, "controlPlaneLoadBalancing.keepalived..." for a spec.network body
// and "keepalived.vrrpInstances[1].authPass" for the bare section, so the
// path always points into the file the user wrote. A Config built in Go
// reports ClusterConfig paths.
//
// # k0s rules reproduced
//
// CPLB type Keepalived only ("unsupported CPLB type"); vrrpInstances at most
// 255; virtualIPs required, each an address in CIDR form, a set;
// virtualRouterID 51+index when 0 ("automatic virtualRouterIDs exceeded,
// specify them explicitly" beyond 255), explicit 1-255;
// advertIntervalSeconds 0 -> 1, minimum 1; authPass required, 1-8
// characters, even for IPv6; unicastSourceIP required and an IP when
// unicastPeers is set; each peer an IP and not the source; addressLabel
// 0 -> 10000, 0xffffffff reserved; userSpaceProxyBindPort 0 -> 6444,
// 1-65535; virtualServers: ipAddress required and an IP (unique, the list
// map key), lbAlgo rr|wrr|lc|wlc|lblc|dh|sh|sed|nq default rr, lbKind
// NAT|DR|TUN default DR, persistenceTimeoutSeconds 0 -> 360, 1-2678400,
// delayLoop default 1m, truncated to microseconds, positive; NLLB type
// EnvoyProxy (default) or Traefik, imagePullPolicy Always|Never|IfNotPresent,
// bind ports 7443/7132 by default and 1-65535; NLLB with
// spec.api.externalAddress is forbidden. Like k0s, the CPLB section is
// validated even when it is not enabled, and defaults are written back into
// the typed spec. Interface resolution (empty -> default-route link, MAC
// -> link name) is Config.ResolveInterfaces, run by cmd with the Linux
// resolver.
//
// # Checks k0s does not do
//
// nlb also rejects: the same VIP in two instances (or twice in one); IPv4
// and IPv6 VIPs in one instance; a unicast source or peer of the other
// family; a VIP equal to any instance's unicastSourceIP or unicastPeers
// (a node's own address); duplicate peers; a VRID used twice on one interface and address
// family (re-checked after interface resolution); IPv4-mapped, zoned,
// unspecified or multicast addresses; a loopback VIP, or one that is the
// network or broadcast address of its IPv4 subnet (prefixes up to /30) or
// the Subnet-Router anycast address of its IPv6 subnet (up to /126); a
// unicastSourceIP that is not an address, even without peers; interface
// names the kernel would refuse; a duplicate virtualServers ipAddress by
// address rather than by string; a virtualServers lbKind NAT or TUN (nlb's
// fast path does direct server return only, k0s's default DR; see
// Config.VirtualServers); more than 255 vrrpInstances (only the first 255
// are checked further). Things k0s accepts but nlb ignores are
// reported by Warnings: configTemplateVRRP/VS, the IPVS-only
// virtualServers settings, a virtualServers ipAddress no instance holds,
// the NLLB image fields, a valid unicastSourceIP without peers,
// addressLabel for IPv4.
//
// # Nothing to run
//
// A valid configuration may still give `nlb vrrp` and `nlb controller`
// nothing to run: no controlPlaneLoadBalancing section, enabled: false, no
// vrrpInstances. Config.Runnable names the reason; both commands call it
// with --check and before running, so the two agree.
//
// # nlb additions
//
// Each vrrpInstances[] entry may also set, all optional:
//
//	name: k0s-vip-0        # default "k0s-vip-<index>", k0s's vrrp_instance name
//	priority: 200          # 1-255, default 200 like k0s's template
//	preempt: true          # false = keepalived nopreempt
//	preemptDelay: 0s       # 0-1000s, keepalived preempt_delay
//	vrrpVersion: 2         # 2 or 3; default 2 for IPv4, 3 for IPv6 (keepalived)
//	advertInterval: 100ms  # VRRPv3 only; 10ms-40.95s in 10ms steps; overrides advertIntervalSeconds
//	v3ChecksumAsV2: false  # RFC 9568 VRRPv3/IPv4 checksum without pseudo-header
//	garp:                  # keepalived vrrp_garp_* defaults shown
//	  masterDelay: 5s      # second burst after becoming master; 0s = none
//	  masterRepeat: 5      # messages per burst, 1-255
//	  masterRefresh: 0s    # periodic refresh while master; 0s = none
//	  masterRefreshRepeat: 1
//	  interval: 0s         # gap between messages of a burst, at most 1s
//
// and the keepalived section itself, for `nlb controller`:
//
//	steering: auto         # auto (eBPF sk_lookup, else nftables), sklookup or nftables
//	apiServerHealth:       # the VIP follows the local API server's /readyz and the proxy
//	  enabled: true
//	  interval: 500ms      # 10ms-1h
//	  timeout: 400ms       # at most interval
//	  fall: 3              # failures before acting
//	  rise: 5              # successes to take part again (doubles while flapping)
//	  weight: 0            # 0: give up mastership; -N: lower the priority by N; +N: raise while healthy
//	  startupGrace: 10m    # bootstrap: until the first passing check, failures are not counted for up
//	                       # to this long after start (0s: gate from the first check; at most 24h)
//
// Durations are Go duration strings ("100ms", "1m"), as metav1.Duration
// is; bare numbers are rejected.
package config
