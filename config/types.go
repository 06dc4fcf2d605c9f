package config

// This file holds the typed schema. JSON names, defaults and bounds follow
// k0s pkg/apis/k0s/v1beta1/cplb.go, nllb.go and api.go field for field; the
// fields marked "nlb addition" are not in k0s and are optional.

// CPLBType selects the control plane load balancer implementation
// (k0s cplb.go CPLBType).
type CPLBType string

// CPLBTypeKeepalived is the only CPLB type k0s allows and the default
// (k0s cplb.go CPLBTypeKeepalived). nlb implements its behaviour natively.
const CPLBTypeKeepalived CPLBType = "Keepalived"

// NLLBType selects the node-local load balancer implementation
// (k0s nllb.go NllbType).
type NLLBType string

// Node-local load balancer types accepted by k0s. nlb treats both as
// aliases for its own in-process balancer.
const (
	// NLLBTypeEnvoyProxy is k0s's default NLLB type.
	NLLBTypeEnvoyProxy NLLBType = "EnvoyProxy"
	// NLLBTypeTraefik is the Traefik NLLB type (k0s PR #7405).
	NLLBTypeTraefik NLLBType = "Traefik"
)

// Defaults, named after the k0s or keepalived setting they reproduce.
const (
	// DefaultAPIPort is spec.api.port's default (k0s api.go).
	DefaultAPIPort = 6443
	// DefaultKonnectivityAgentPort is spec.konnectivity.agentPort's
	// default (k0s konnectivity.go): the port konnectivity agents dial on
	// the controllers, the upstream of node-local load balancing's
	// konnectivity listener.
	DefaultKonnectivityAgentPort = 8132
	// DefaultUserSpaceProxyPort is keepalived.userSpaceProxyBindPort's
	// default (k0s cplb.go KeepalivedSpec.Validate).
	DefaultUserSpaceProxyPort = 6444
	// DefaultVirtualRouterID is the first automatic virtualRouterID; the
	// i-th instance gets DefaultVirtualRouterID+i (k0s cplb.go
	// defaultVirtualRouterID).
	DefaultVirtualRouterID = 51
	// DefaultAdvertIntervalSeconds is advertIntervalSeconds' default
	// (k0s cplb.go defaultAdvertIntervalSeconds).
	DefaultAdvertIntervalSeconds = 1
	// DefaultAddressLabel is addressLabel's default (k0s cplb.go
	// VRRPInstance.validate).
	DefaultAddressLabel = 10000
	// DefaultPriority is the priority k0s's keepalived template gives every
	// node (k0s pkg/component/controller/cplb/cplb_templates.go).
	DefaultPriority = 200
	// DefaultPersistenceTimeoutSeconds is virtualServers[].persistenceTimeoutSeconds'
	// default (k0s cplb.go VirtualServer.validate).
	DefaultPersistenceTimeoutSeconds = 360
	// DefaultNLLBAPIServerBindPort is envoyProxy/traefik.apiServerBindPort's
	// default (k0s nllb.go setDefaults).
	DefaultNLLBAPIServerBindPort = 7443
	// DefaultNLLBKonnectivityServerBindPort is
	// envoyProxy/traefik.konnectivityServerBindPort's default (k0s nllb.go).
	DefaultNLLBKonnectivityServerBindPort = 7132
	// MaxVRRPInstances is the kubebuilder MaxItems of vrrpInstances
	// (k0s cplb.go VRRPInstances).
	MaxVRRPInstances = 255
)

// APISpec is the part of k0s's spec.api that nlb needs (k0s api.go APISpec).
// Every other spec.api field is accepted and ignored.
type APISpec struct {
	// Port is the Kubernetes API server port, spec.api.port; 0 means 6443.
	Port int `json:"port,omitempty"`
	// ExternalAddress is spec.api.externalAddress. Node-local load
	// balancing cannot be used with it.
	ExternalAddress string `json:"externalAddress,omitempty"`
}

// KonnectivitySpec is the part of spec.konnectivity nlb reads.
type KonnectivitySpec struct {
	// AgentPort is spec.konnectivity.agentPort; 0 means 8132.
	AgentPort int `json:"agentPort,omitempty"`
}

// ControlPlaneLoadBalancing is spec.network.controlPlaneLoadBalancing
// (k0s cplb.go ControlPlaneLoadBalancingSpec).
type ControlPlaneLoadBalancing struct {
	// Enabled turns control plane load balancing on. Default false.
	Enabled bool `json:"enabled"`
	// Type must be "Keepalived" (the default when empty); anything else is
	// "unsupported CPLB type" (k0s cplb.go ControlPlaneLoadBalancingSpec.Validate).
	Type CPLBType `json:"type,omitempty"`
	// Keepalived holds the VRRP instances and load balancer settings. When
	// nil nothing runs (k0s logs a warning and does nothing; so does nlb).
	Keepalived *KeepalivedSpec `json:"keepalived,omitempty"`
}

// KeepalivedSpec is ...controlPlaneLoadBalancing.keepalived (k0s cplb.go
// KeepalivedSpec).
type KeepalivedSpec struct {
	// VRRPInstances are the virtual routers; at most 255.
	VRRPInstances []VRRPInstance `json:"vrrpInstances,omitempty"`
	// VirtualServers, when non-empty, select keepalived's IPVS load
	// balancer in k0s. nlb validates them like k0s but balances with its
	// own proxy; see Config.Warnings.
	VirtualServers []VirtualServer `json:"virtualServers,omitempty"`
	// UserSpaceProxyPort is the port of the userspace proxy, JSON
	// "userSpaceProxyBindPort"; 0 means 6444; must be 1-65535.
	UserSpaceProxyPort int `json:"userSpaceProxyBindPort,omitempty"`
	// DisableLoadBalancer keeps the VIPs but runs no load balancer.
	DisableLoadBalancer bool `json:"disableLoadBalancer,omitempty"`
	// ConfigTemplateVRRP is a path to a keepalived template. It is accepted
	// for compatibility and ignored: nlb has no keepalived.
	ConfigTemplateVRRP string `json:"configTemplateVRRP,omitempty"`
	// ConfigTemplateVS is a path to a keepalived virtual-server template,
	// accepted and ignored like ConfigTemplateVRRP.
	ConfigTemplateVS string `json:"configTemplateVS,omitempty"`

	// Steering (nlb addition) selects how `nlb controller` hands
	// VIP:spec.api.port connections to the proxy: "auto" (default: eBPF
	// sk_lookup, else nftables), "sklookup" or "nftables". k0s uses an
	// iptables REDIRECT rule instead.
	Steering string `json:"steering,omitempty"`
	// APIServerHealth (nlb addition) makes the VIP follow the health of the
	// local API server (/readyz) and of the proxy: after Fall failed checks
	// the node lowers its priority or gives up mastership, and takes part
	// again after Rise good ones (k0s issues #6527, #6866).
	APIServerHealth *APIServerHealthSpec `json:"apiServerHealth,omitempty"`
}

// APIServerHealthSpec is the nlb addition tying VRRP to API server health,
// in the spirit of keepalived's vrrp_script + track_script.
type APIServerHealthSpec struct {
	// Enabled turns health tracking on (default true).
	Enabled *bool `json:"enabled,omitempty"`
	// Interval between checks (default 500ms).
	Interval Duration `json:"interval,omitzero"`
	// Timeout of one check (default 400ms; at most Interval).
	Timeout Duration `json:"timeout,omitzero"`
	// Fall is the number of consecutive failures to act (default 3).
	Fall int32 `json:"fall,omitempty"`
	// Rise is the number of consecutive successes to recover (default 5);
	// it doubles while the check flaps (see vrrp.TrackConfig).
	Rise int32 `json:"rise,omitempty"`
	// Weight is keepalived's track_script weight: 0 (default) gives up
	// mastership (priority 0) while failed, negative lowers the priority
	// by that much while failed, positive raises it while healthy.
	Weight *int32 `json:"weight,omitempty"`
	// StartupGrace is the bootstrap rule: until the check has passed once,
	// failures are not counted for up to this long after nlb starts, so the
	// node takes part in VRRP at its configured priority while its API
	// server does not exist yet (kubeadm init, a new cluster's first
	// controller). Once the check passes, or the grace runs out, failures
	// count as usual. nil means 10m (DefaultHealthStartupGrace); 0s gates
	// from the first check. At most 24h.
	StartupGrace *Duration `json:"startupGrace,omitempty"`
}

// VRRPInstance is one keepalived.vrrpInstances[] entry (k0s cplb.go
// VRRPInstance) plus nlb's optional additions.
type VRRPInstance struct {
	// VirtualIPs are the VIPs in CIDR form ("10.0.0.100/24"); at least
	// one, no duplicates, one address family.
	VirtualIPs []string `json:"virtualIPs"`
	// Interface is a link name or a MAC address. Empty means the interface
	// of the default route. Resolved by Config.ResolveInterfaces.
	Interface string `json:"interface,omitempty"`
	// VirtualRouterID is the VRID, 1-255. 0 means 51+index.
	VirtualRouterID int32 `json:"virtualRouterID,omitempty"`
	// AdvertIntervalSeconds is the advertisement interval in whole
	// seconds; 0 means 1.
	AdvertIntervalSeconds int32 `json:"advertIntervalSeconds,omitempty"`
	// AuthPass is the VRRPv2 PASS password, 1-8 characters. k0s requires
	// it even for IPv6 (VRRPv3 has no authentication); nlb accepts it and
	// ignores it for version 3.
	AuthPass string `json:"authPass"`
	// UnicastPeers are the other nodes' addresses; empty means multicast.
	UnicastPeers []string `json:"unicastPeers,omitempty"`
	// UnicastSourceIP is this node's source address, required when
	// UnicastPeers is set and ignored otherwise.
	UnicastSourceIP string `json:"unicastSourceIP,omitempty"`
	// AddressLabel is the RFC 6724 label of IPv6 VIPs; 0 means 10000;
	// 0xffffffff is reserved. Ignored for IPv4.
	AddressLabel uint32 `json:"addressLabel,omitempty"`

	// Name names the instance in logs and metrics; default "k0s-vip-<index>",
	// the name of k0s's vrrp_instance block. nlb addition.
	Name string `json:"name,omitempty"`
	// Priority is this node's priority, 1-255; 0 means 200 (k0s's
	// template). nlb addition.
	Priority int32 `json:"priority,omitempty"`
	// Preempt lets a higher-priority backup take over from a master;
	// nil means true (keepalived's default). false is keepalived's
	// nopreempt. nlb addition.
	Preempt *bool `json:"preempt,omitempty"`
	// PreemptDelay delays preemption after start-up, 0-1000s (keepalived
	// preempt_delay). nlb addition.
	PreemptDelay Duration `json:"preemptDelay,omitzero"`
	// VRRPVersion is 2 or 3; 0 means 2 for IPv4 VIPs and 3 for IPv6 VIPs,
	// as keepalived does. nlb addition.
	VRRPVersion int32 `json:"vrrpVersion,omitempty"`
	// AdvertInterval is a sub-second advertisement interval for VRRPv3,
	// a multiple of 10ms from 10ms to 40.95s. It overrides
	// AdvertIntervalSeconds. nlb addition.
	AdvertInterval Duration `json:"advertInterval,omitzero"`
	// V3ChecksumAsV2 computes the VRRPv3/IPv4 checksum without the IPv4
	// pseudo-header, as RFC 9568 does (keepalived v3_checksum_as_v2).
	// nlb addition.
	V3ChecksumAsV2 bool `json:"v3ChecksumAsV2,omitempty"`
	// GARP tunes gratuitous ARP / unsolicited NA after becoming master;
	// nil means keepalived's defaults. nlb addition.
	GARP *GARPSpec `json:"garp,omitempty"`
}

// GARPSpec tunes gratuitous ARP / unsolicited Neighbor Advertisements sent
// by a new master (keepalived vrrp_garp_* settings). Every field is
// optional; nil takes keepalived's default. nlb addition.
type GARPSpec struct {
	// MasterDelay is the delay of the second burst after becoming master;
	// default 5s, 0 means no second burst (vrrp_garp_master_delay).
	MasterDelay *Duration `json:"masterDelay,omitempty"`
	// MasterRepeat is the number of messages per burst; default 5
	// (vrrp_garp_master_repeat).
	MasterRepeat *int32 `json:"masterRepeat,omitempty"`
	// MasterRefresh is the period of refresh bursts while master; default
	// 0, no refresh (vrrp_garp_master_refresh).
	MasterRefresh *Duration `json:"masterRefresh,omitempty"`
	// MasterRefreshRepeat is the number of messages per refresh burst;
	// default 1 (vrrp_garp_master_refresh_repeat).
	MasterRefreshRepeat *int32 `json:"masterRefreshRepeat,omitempty"`
	// Interval is the gap between messages of one burst; default 0
	// (vrrp_garp_interval / vrrp_gna_interval).
	Interval *Duration `json:"interval,omitempty"`
}

// VirtualServer is one keepalived.virtualServers[] entry (k0s cplb.go
// VirtualServer).
type VirtualServer struct {
	// IPAddress is the virtual server address, a bare IP (no mask).
	IPAddress string `json:"ipAddress"`
	// DelayLoop is the health-check period; default 1m, truncated to
	// microseconds, must be positive.
	DelayLoop Duration `json:"delayLoop,omitzero"`
	// LBAlgo is one of rr, wrr, lc, wlc, lblc, dh, sh, sed, nq; default rr.
	LBAlgo string `json:"lbAlgo,omitempty"`
	// LBKind is one of NAT, DR, TUN; default DR.
	LBKind string `json:"lbKind,omitempty"`
	// PersistenceTimeoutSeconds is 1-2678400; 0 means 360.
	PersistenceTimeoutSeconds int `json:"persistenceTimeoutSeconds,omitempty"`
}

// NodeLocalLoadBalancing is spec.network.nodeLocalLoadBalancing (k0s
// nllb.go NodeLocalLoadBalancing).
type NodeLocalLoadBalancing struct {
	// Enabled turns node-local load balancing on. Default false.
	Enabled bool `json:"enabled"`
	// Type is EnvoyProxy (default) or Traefik; nlb treats both alike.
	Type NLLBType `json:"type,omitempty"`
	// EnvoyProxy holds the settings used when Type is EnvoyProxy.
	EnvoyProxy *NLLBProxy `json:"envoyProxy,omitempty"`
	// Traefik holds the settings used when Type is Traefik.
	Traefik *NLLBProxy `json:"traefik,omitempty"`
}

// NLLBProxy is k0s's EnvoyProxy / Traefik block (k0s nllb.go EnvoyProxy).
// The image fields are accepted and ignored: nlb runs in-process.
type NLLBProxy struct {
	// Image is the container image; accepted and ignored.
	Image *ImageSpec `json:"image,omitempty"`
	// ImagePullPolicy is Always, Never, IfNotPresent or empty; accepted
	// and ignored.
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`
	// APIServerBindPort is the loopback port for the API server; 0 means
	// 7443; must be 1-65535.
	APIServerBindPort int32 `json:"apiServerBindPort,omitempty"`
	// KonnectivityServerBindPort is the loopback port for konnectivity;
	// nil means 7132; must be 1-65535 when set.
	KonnectivityServerBindPort *int32 `json:"konnectivityServerBindPort,omitempty"`
}

// ImageSpec is k0s's image reference (k0s images.go ImageSpec).
type ImageSpec struct {
	// Image is the image name.
	Image string `json:"image,omitempty"`
	// Version is the image tag.
	Version string `json:"version,omitempty"`
}
