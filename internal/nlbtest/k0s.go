package nlbtest

import (
	"fmt"
	"net/netip"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/nlb-dev/nlb/config"
)

// K0sConfig is a k0s ClusterConfig for nlb in a lab's terms: the labs'
// one renderer of nlb's configuration. It fills config's own types, so the
// field names are the ones config.Load reads. A zero field is left out,
// and nlb applies k0s's default.
type K0sConfig struct {
	// APIPort is spec.api.port.
	APIPort int
	// Instances are keepalived.vrrpInstances.
	Instances []VRRPInstance
	// ProxyPort is keepalived.userSpaceProxyBindPort.
	ProxyPort int
	// DisableLoadBalancer is keepalived.disableLoadBalancer.
	DisableLoadBalancer bool
	// Steering is keepalived.steering ("auto", "sklookup", "nftables").
	Steering string
	// Health is keepalived.apiServerHealth.
	Health *Health
	// VirtualServers are keepalived.virtualServers' ipAddress values,
	// each with k0s's defaults (rr, DR, 360, 1m): nlb controller runs
	// the XDP fast path for them.
	VirtualServers []netip.Addr
}

// VRRPInstance is one keepalived.vrrpInstances entry.
type VRRPInstance struct {
	// Name is name.
	Name string
	// VIPs are virtualIPs.
	VIPs []netip.Prefix
	// Interface is interface.
	Interface string
	// VRID is virtualRouterID.
	VRID int
	// Priority is priority.
	Priority int
	// Version is vrrpVersion (2 or 3).
	Version int
	// Interval is advertInterval for VRRPv3 (Version 3, or Version 0 with
	// IPv6 VIPs) and advertIntervalSeconds, whole seconds, for VRRPv2.
	Interval time.Duration
	// AuthPass is authPass, which k0s requires.
	AuthPass string
	// Preempt is preempt.
	Preempt *bool
	// UnicastSource and UnicastPeers are unicastSourceIP and unicastPeers.
	UnicastSource netip.Addr
	UnicastPeers  []netip.Addr
	// ChecksumAsV2 is v3ChecksumAsV2.
	ChecksumAsV2 bool
	// GARPMasterDelay is garp.masterDelay (0: one burst only).
	GARPMasterDelay *time.Duration
}

// Health is keepalived.apiServerHealth.
type Health struct {
	// Interval and Timeout are interval and timeout.
	Interval, Timeout time.Duration
	// Fall and Rise are fall and rise.
	Fall, Rise int
	// Weight is weight.
	Weight *int
}

// clusterConfig is the document around spec.network.
type clusterConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		API     *config.APISpec `json:"api,omitempty"`
		Network struct {
			CPLB config.ControlPlaneLoadBalancing `json:"controlPlaneLoadBalancing"`
		} `json:"network"`
	} `json:"spec"`
}

// YAML renders the ClusterConfig (keys in alphabetical order). Marshalling
// config's types cannot fail; if it ever did, the document would be the
// error message, which config.Load refuses.
func (k K0sConfig) YAML() []byte {
	ka := &config.KeepalivedSpec{
		UserSpaceProxyPort:  k.ProxyPort,
		DisableLoadBalancer: k.DisableLoadBalancer,
		Steering:            k.Steering,
	}
	for _, in := range k.Instances {
		ka.VRRPInstances = append(ka.VRRPInstances, in.spec())
	}
	for _, v := range k.VirtualServers {
		ka.VirtualServers = append(ka.VirtualServers, config.VirtualServer{IPAddress: v.String()})
	}
	if h := k.Health; h != nil {
		ka.APIServerHealth = &config.APIServerHealthSpec{
			Interval: config.Duration(h.Interval), Timeout: config.Duration(h.Timeout),
			Fall: int32(h.Fall), Rise: int32(h.Rise),
		}
		if h.Weight != nil {
			w := int32(*h.Weight)
			ka.APIServerHealth.Weight = &w
		}
	}
	doc := clusterConfig{APIVersion: "k0s.k0sproject.io/v1beta1", Kind: "ClusterConfig"}
	doc.Metadata.Name = "k0s"
	if k.APIPort != 0 {
		doc.Spec.API = &config.APISpec{Port: k.APIPort}
	}
	doc.Spec.Network.CPLB = config.ControlPlaneLoadBalancing{Enabled: true, Type: config.CPLBTypeKeepalived, Keepalived: ka}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return fmt.Appendf(nil, "nlbtest: %v", err)
	}
	return b
}

func (in VRRPInstance) spec() config.VRRPInstance {
	s := config.VRRPInstance{
		Name: in.Name, Interface: in.Interface, VirtualRouterID: int32(in.VRID), Priority: int32(in.Priority),
		VRRPVersion: int32(in.Version), AuthPass: in.AuthPass, Preempt: in.Preempt, V3ChecksumAsV2: in.ChecksumAsV2,
	}
	for _, v := range in.VIPs {
		s.VirtualIPs = append(s.VirtualIPs, v.String())
	}
	if in.Version == 3 || (in.Version == 0 && len(in.VIPs) > 0 && in.VIPs[0].Addr().Is6()) {
		s.AdvertInterval = config.Duration(in.Interval)
	} else {
		s.AdvertIntervalSeconds = int32(in.Interval / time.Second)
	}
	if in.UnicastSource.IsValid() {
		s.UnicastSourceIP = in.UnicastSource.String()
	}
	for _, p := range in.UnicastPeers {
		s.UnicastPeers = append(s.UnicastPeers, p.String())
	}
	if in.GARPMasterDelay != nil {
		d := config.Duration(*in.GARPMasterDelay)
		s.GARP = &config.GARPSpec{MasterDelay: &d}
	}
	return s
}
