package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nlb-dev/nlb/vrrp"
)

// Validate fills in defaults and checks every rule, like k0s's
// ClusterConfig validation (which also writes defaults back). It returns a
// *ValidationError listing every problem, or nil. Load calls it; call it
// yourself after building or changing a Config in Go. It is idempotent.
func (c *Config) Validate() error {
	var p problems
	c.check(&p)
	return p.err()
}

// warn records a warning.
func (c *Config) warn(path, msg string) {
	if path != "" {
		msg = path + ": " + msg
	}
	c.warnings = append(c.warnings, msg)
}

func (c *Config) check(p *problems) {
	c.warnings = nil
	c.instances = nil
	c.checkAPI(p)
	c.checkNLLB(p)
	c.checkCPLB(p)
	c.checkController(p)
}

// checkPort reports a port outside 1-65535 (k8s validation.IsValidPortNum,
// used by k0s for every port field).
func checkPort(p *problems, path string, port int) {
	if port < 1 || port > 65535 {
		p.add(path, fmt.Sprintf("must be between 1 and 65535, inclusive, got %d", port))
	}
}

func (c *Config) checkAPI(p *problems) {
	if c.API.Port == 0 {
		c.API.Port = DefaultAPIPort
	} else {
		checkPort(p, child(c.Form.apiPath(), "port"), c.API.Port)
	}
	if c.Konnectivity.AgentPort == 0 {
		c.Konnectivity.AgentPort = DefaultKonnectivityAgentPort
	} else {
		sp, _ := c.Form.specPath()
		checkPort(p, child(child(sp, "konnectivity"), "agentPort"), c.Konnectivity.AgentPort)
	}
}

// checkNLLB follows k0s nllb.go NodeLocalLoadBalancing.Validate and
// clusterconfig_types.go ValidateNodeLocalLoadBalancing.
func (c *Config) checkNLLB(p *problems) {
	n := &c.NodeLocalLoadBalancing
	path := c.Form.nllbPath()
	switch n.Type {
	case "":
		n.Type = NLLBTypeEnvoyProxy // k0s nllb.go setDefaults
	case NLLBTypeEnvoyProxy, NLLBTypeTraefik:
	default:
		p.add(child(path, "type"), fmt.Sprintf("unsupported value %q: supported values: %q, %q",
			n.Type, NLLBTypeEnvoyProxy, NLLBTypeTraefik))
	}
	// Only the block of the selected type is defaulted (k0s setDefaults).
	switch n.Type {
	case NLLBTypeTraefik:
		if n.Traefik == nil {
			n.Traefik = &NLLBProxy{}
		}
	case NLLBTypeEnvoyProxy:
		if n.EnvoyProxy == nil {
			n.EnvoyProxy = &NLLBProxy{}
		}
	}
	for _, b := range []struct {
		name string
		px   *NLLBProxy
	}{{"envoyProxy", n.EnvoyProxy}, {"traefik", n.Traefik}} {
		if b.px == nil {
			continue
		}
		bp := child(path, b.name)
		switch b.px.ImagePullPolicy {
		case "", "Always", "Never", "IfNotPresent":
		default:
			p.add(child(bp, "imagePullPolicy"), fmt.Sprintf(
				"unsupported value %q: supported values: \"Always\", \"Never\", \"IfNotPresent\"", b.px.ImagePullPolicy))
		}
		if b.px.APIServerBindPort == 0 {
			b.px.APIServerBindPort = DefaultNLLBAPIServerBindPort
		} else {
			checkPort(p, child(bp, "apiServerBindPort"), int(b.px.APIServerBindPort))
		}
		if b.px.KonnectivityServerBindPort == nil {
			k := int32(DefaultNLLBKonnectivityServerBindPort)
			b.px.KonnectivityServerBindPort = &k
		} else {
			checkPort(p, child(bp, "konnectivityServerBindPort"), int(*b.px.KonnectivityServerBindPort))
		}
		if b.px.Image != nil {
			c.warn(child(bp, "image"), "ignored: nlb runs in-process, not as an image")
		}
	}
	if n.Enabled && c.API.ExternalAddress != "" {
		p.add(child(path, "enabled"), "node-local load balancing cannot be used in conjunction with "+
			"an external Kubernetes API server address ("+child(c.Form.apiPath(), "externalAddress")+")")
	}
}

// checkCPLB follows k0s cplb.go ControlPlaneLoadBalancingSpec.Validate and
// KeepalivedSpec.Validate, then adds nlb's cross-instance rules.
func (c *Config) checkCPLB(p *problems) {
	cp := &c.ControlPlaneLoadBalancing
	path := c.Form.cplbPath()
	switch cp.Type {
	case "":
		cp.Type = CPLBTypeKeepalived
	case CPLBTypeKeepalived:
	default:
		p.add(child(path, "type"), fmt.Sprintf("unsupported CPLB type: %s. Only allowed value: %s",
			cp.Type, CPLBTypeKeepalived))
	}
	ka := cp.Keepalived
	kpath := child(path, "keepalived")
	if ka == nil {
		if cp.Enabled {
			c.warn(kpath, "not set: control plane load balancing is enabled but has nothing to do")
		}
		return
	}
	if !cp.Enabled && len(ka.VRRPInstances) > 0 {
		c.warn(child(path, "enabled"), "false: the VRRP instances are validated but will not run")
	}

	if ka.UserSpaceProxyPort == 0 {
		ka.UserSpaceProxyPort = DefaultUserSpaceProxyPort
	} else {
		checkPort(p, child(kpath, "userSpaceProxyBindPort"), ka.UserSpaceProxyPort)
	}
	if ka.ConfigTemplateVRRP != "" {
		c.warn(child(kpath, "configTemplateVRRP"), "ignored: keepalived templates are unsupported without keepalived")
	}
	if ka.ConfigTemplateVS != "" {
		c.warn(child(kpath, "configTemplateVS"), "ignored: keepalived templates are unsupported without keepalived")
	}

	vpath := child(kpath, "vrrpInstances")
	specs := ka.VRRPInstances
	if len(specs) > MaxVRRPInstances {
		p.add(vpath, fmt.Sprintf("must have at most %d items, got %d (only the first %d are checked)",
			MaxVRRPInstances, len(specs), MaxVRRPInstances))
		specs = specs[:MaxVRRPInstances]
	}
	var insts []Instance
	for i := range specs {
		insts = append(insts, c.checkInstance(p, index(vpath, i), i, &specs[i]))
	}
	checkAcross(p, vpath, specs, insts)
	c.checkVirtualServers(p, child(kpath, "virtualServers"), ka.VirtualServers, insts)
	c.instances = insts
}

// parseVIP parses a virtualIPs entry: an address in CIDR form, like
// net.ParseCIDR / k8s validation.IsValidInterfaceAddress in k0s.
func parseVIP(s string) (netip.Prefix, string) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		if _, perr := netip.ParseAddr(s); perr == nil {
			return netip.Prefix{}, fmt.Sprintf("must be an address in CIDR form with its prefix length, "+
				"e.g. %s/24 or 2001:db8::100/64, got %q", s, s)
		}
		return netip.Prefix{}, fmt.Sprintf("must be an address in CIDR form, e.g. 10.0.0.100/24 or "+
			"2001:db8::100/64, got %q", s)
	}
	a := pfx.Addr()
	switch {
	case a.Is4In6():
		return netip.Prefix{}, fmt.Sprintf("IPv4-mapped IPv6 addresses are not supported, got %q", s)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Prefix{}, fmt.Sprintf("must be a unicast address, got %q", s)
	case a.IsLoopback():
		return netip.Prefix{}, fmt.Sprintf("must not be a loopback address: no other node can reach it, got %q", s)
	}
	// The first and last addresses of an IPv4 subnet are its network and
	// broadcast addresses (RFC 919, RFC 922); /31 (RFC 3021) and /32 have
	// neither. An IPv6 subnet's first address is its Subnet-Router
	// anycast address (RFC 4291 §2.6.1); /127 (RFC 6164) and /128 have
	// none.
	bits, max := pfx.Bits(), a.BitLen()
	if bits < max-1 {
		sub := pfx.Masked()
		switch {
		case a == sub.Addr() && a.Is4():
			return netip.Prefix{}, fmt.Sprintf("%s is the network address of %s, not a host address: "+
				"use one such as %s/%d", a, sub, a.Next(), bits)
		case a == sub.Addr():
			return netip.Prefix{}, fmt.Sprintf("%s is the Subnet-Router anycast address of %s, not a host address: "+
				"use one such as %s/%d", a, sub, a.Next(), bits)
		case a.Is4() && a == lastAddr(sub):
			return netip.Prefix{}, fmt.Sprintf("%s is the broadcast address of %s, not a host address: "+
				"use one such as %s/%d", a, sub, a.Prev(), bits)
		}
	}
	return pfx, ""
}

// lastAddr returns the last address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// parseIP parses a unicast peer or source address, like k8s
// validation.IsValidIP in k0s but without zones or mapped addresses.
func parseIP(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return a, fmt.Sprintf("must be a valid IP address, got %q", s)
	case a.Zone() != "":
		return a, fmt.Sprintf("must not have a zone, got %q", s)
	case a.Is4In6():
		return a, fmt.Sprintf("IPv4-mapped IPv6 addresses are not supported, got %q", s)
	case a.IsUnspecified() || a.IsMulticast():
		return a, fmt.Sprintf("must be a unicast address, got %q", s)
	}
	return a, ""
}

func family(ipv6 bool) string {
	if ipv6 {
		return "IPv6"
	}
	return "IPv4"
}

// validIfName reports whether s is a usable Linux link name (the kernel's
// dev_valid_name: 1-15 bytes, not "." or "..", no '/', ':' or space).
func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r == '/' || r == ':' || unicode.IsSpace(r) || r > unicode.MaxASCII || !unicode.IsPrint(r)
	})
}

// Bounds of nlb's additions.
const (
	minV3Interval   = 10 * time.Millisecond // one centisecond, RFC 5798 §5.2.7
	maxV3Interval   = 4095 * minV3Interval  // 12-bit Max Adver Int
	maxV2IntervalS  = 255                   // 8-bit Adver Int, RFC 3768 §5.3.7
	maxPreemptDelay = 1000 * time.Second    // keepalived preempt_delay
	maxGARPRepeat   = 255
	maxGARPInterval = time.Second
	maxNameLen      = 64
)

// checkInstance follows k0s cplb.go VRRPInstance.validate for the k0s
// fields and adds nlb's rules. It writes k0s's defaults back (as k0s does)
// and returns the resolved Instance, which is only meaningful when no
// problem was added.
func (c *Config) checkInstance(p *problems, path string, i int, in *VRRPInstance) Instance {
	n := p.count()
	out := Instance{Index: i, Interface: in.Interface}

	if in.Name == "" {
		in.Name = "k0s-vip-" + strconv.Itoa(i) // k0s cplb_templates.go vrrp_instance name
	} else if len(in.Name) > maxNameLen || strings.ContainsFunc(in.Name, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) {
		p.add(child(path, "name"), fmt.Sprintf("must be at most %d printable characters without spaces", maxNameLen))
	}
	out.Name = in.Name

	// virtualIPs: required, CIDR, a set (k0s listType=set), one family (nlb).
	vipPath := child(path, "virtualIPs")
	if len(in.VirtualIPs) == 0 {
		p.add(vipPath, "required: at least one virtual IP in CIDR form, e.g. 10.0.0.100/24")
	}
	var has4, has6 bool
	seen := map[netip.Addr]int{}
	for j, s := range in.VirtualIPs {
		pfx, msg := parseVIP(s)
		if msg != "" {
			p.add(index(vipPath, j), msg)
			continue
		}
		a := pfx.Addr()
		if k, dup := seen[a]; dup {
			p.add(index(vipPath, j), fmt.Sprintf("duplicate of virtualIPs[%d] (%s)", k, a))
			continue
		}
		seen[a] = j
		has4 = has4 || a.Is4()
		has6 = has6 || a.Is6()
		out.VIPs = append(out.VIPs, pfx)
	}
	mixed := has4 && has6
	if mixed {
		p.add(vipPath, "mixes IPv4 and IPv6 addresses: a VRRP instance carries one address family; "+
			"use one instance per family")
	}
	out.IPv6 = has6 && !has4
	famKnown := (has4 || has6) && !mixed

	// interface: a link name or a MAC (k0s resolves a MAC to a name).
	if in.Interface != "" {
		if _, err := net.ParseMAC(in.Interface); err != nil && !validIfName(in.Interface) {
			p.add(child(path, "interface"), fmt.Sprintf("must be an interface name (1-15 characters, no '/', ':' "+
				"or spaces) or a MAC address, got %q", in.Interface))
		}
	}

	// virtualRouterID: 0 -> 51+index, explicit 1-255.
	switch id := in.VirtualRouterID; {
	case id == 0:
		if auto := DefaultVirtualRouterID + i; auto > 255 {
			p.add(child(path, "virtualRouterID"), "automatic virtualRouterIDs exceeded, specify them explicitly")
		} else {
			in.VirtualRouterID = int32(auto)
		}
	case id < 1 || id > 255:
		p.add(child(path, "virtualRouterID"), fmt.Sprintf("must be between 1 and 255, inclusive, got %d", id))
	}
	if id := in.VirtualRouterID; id >= 1 && id <= 255 {
		out.VRID = uint8(id)
	}

	// priority (nlb): 0 -> 200, 1-255.
	switch pr := in.Priority; {
	case pr == 0:
		in.Priority = DefaultPriority
	case pr < 1 || pr > 255:
		p.add(child(path, "priority"), fmt.Sprintf("must be between 1 and 255, inclusive, got %d", pr))
	}
	if pr := in.Priority; pr >= 1 && pr <= 255 {
		out.Priority = uint8(pr)
	}

	out.Preempt = in.Preempt == nil || *in.Preempt
	switch d := in.PreemptDelay.Std(); {
	case d < 0 || d > maxPreemptDelay:
		p.add(child(path, "preemptDelay"), fmt.Sprintf("must be between 0s and %s, got %s", maxPreemptDelay, d))
	case d > 0 && !out.Preempt:
		c.warn(child(path, "preemptDelay"), "ignored: preempt is false")
	}
	out.PreemptDelay = in.PreemptDelay.Std()

	// vrrpVersion (nlb): 2 for IPv4, 3 for IPv6, as keepalived.
	verPath := child(path, "vrrpVersion")
	switch v := in.VRRPVersion; {
	case v == 0:
		if famKnown {
			out.Version = vrrp.Version2
			if out.IPv6 {
				out.Version = vrrp.Version3
			}
		}
	case v == 2 || v == 3:
		out.Version = vrrp.Version(v)
	default:
		p.add(verPath, fmt.Sprintf("must be 2 or 3, got %d", v))
	}
	if out.Version == vrrp.Version2 && out.IPv6 {
		p.add(verPath, "VRRPv2 does not support IPv6 virtual IPs; use 3 (the default for IPv6)")
	}

	// advertIntervalSeconds (k0s): 0 -> 1, minimum 1; advertInterval (nlb)
	// overrides it for VRRPv3.
	explicitSecs := in.AdvertIntervalSeconds
	secsPath := child(path, "advertIntervalSeconds")
	if in.AdvertIntervalSeconds == 0 {
		in.AdvertIntervalSeconds = DefaultAdvertIntervalSeconds
	} else if in.AdvertIntervalSeconds < 1 {
		p.add(secsPath, fmt.Sprintf("must be at least 1, got %d", in.AdvertIntervalSeconds))
	}
	if d := in.AdvertInterval.Std(); d != 0 {
		ip := child(path, "advertInterval")
		switch {
		case out.Version != vrrp.Version3:
			if out.Version == vrrp.Version2 {
				p.add(ip, "requires vrrpVersion 3: VRRPv2 advertises whole seconds (use advertIntervalSeconds)")
			}
		case d < minV3Interval || d > maxV3Interval:
			p.add(ip, fmt.Sprintf("must be between %s and %s, got %s", minV3Interval, maxV3Interval, d))
		case d%minV3Interval != 0:
			p.add(ip, fmt.Sprintf("must be a multiple of 10ms (VRRPv3 counts centiseconds), got %s", d))
		default:
			out.Interval = d
		}
		if explicitSecs != 0 {
			c.warn(secsPath, "ignored: advertInterval overrides it")
		}
	} else if s := in.AdvertIntervalSeconds; s >= 1 {
		switch {
		case out.Version == vrrp.Version2 && s > maxV2IntervalS:
			p.add(secsPath, fmt.Sprintf("must be at most %d for VRRPv2, got %d", maxV2IntervalS, s))
		case out.Version == vrrp.Version3 && time.Duration(s)*time.Second > maxV3Interval:
			p.add(secsPath, fmt.Sprintf("must be at most 40 for VRRPv3 (the maximum is 40.95s), got %d", s))
		default:
			out.Interval = time.Duration(s) * time.Second
		}
	}

	// authPass (k0s): required, 1-8 characters, even where unused (v3).
	apPath := child(path, "authPass")
	switch {
	case in.AuthPass == "":
		p.add(apPath, "required: must be 1-8 characters")
	case len(in.AuthPass) > 8:
		p.add(apPath, "must be 1-8 characters")
	case out.Version == vrrp.Version2:
		out.AuthType = vrrp.AuthPassword
		copy(out.AuthData[:], in.AuthPass)
	}

	if in.V3ChecksumAsV2 {
		if out.Version == vrrp.Version3 && !out.IPv6 {
			out.ChecksumForm = vrrp.ChecksumMessageOnly
		} else if famKnown {
			c.warn(child(path, "v3ChecksumAsV2"), "ignored: it only applies to VRRPv3 over IPv4")
		}
	}

	// unicastPeers / unicastSourceIP (k0s), plus families and set semantics.
	srcPath := child(path, "unicastSourceIP")
	if len(in.UnicastPeers) > 0 {
		if in.UnicastSourceIP == "" {
			p.add(srcPath, "required when unicastPeers are specified")
		} else if a, msg := parseIP(in.UnicastSourceIP); msg != "" {
			p.add(srcPath, msg)
		} else {
			if famKnown && a.Is6() != out.IPv6 {
				p.add(srcPath, fmt.Sprintf("is %s but the virtual IPs are %s", family(a.Is6()), family(out.IPv6)))
			}
			out.UnicastSource = a
		}
		peersPath := child(path, "unicastPeers")
		seenPeer := map[netip.Addr]int{}
		for j, s := range in.UnicastPeers {
			pp := index(peersPath, j)
			a, msg := parseIP(s)
			switch {
			case msg != "":
				p.add(pp, msg)
			case a == out.UnicastSource:
				p.add(pp, "must not be the same as unicastSourceIP")
			case famKnown && a.Is6() != out.IPv6:
				p.add(pp, fmt.Sprintf("is %s but the virtual IPs are %s", family(a.Is6()), family(out.IPv6)))
			default:
				if k, dup := seenPeer[a]; dup {
					p.add(pp, fmt.Sprintf("duplicate of unicastPeers[%d] (%s)", k, a))
					continue
				}
				seenPeer[a] = j
				out.UnicastPeers = append(out.UnicastPeers, a)
			}
		}
	} else if in.UnicastSourceIP != "" {
		// Ignored, but not when it is not even an address: a typo here
		// usually means the peers were lost too.
		if _, msg := parseIP(in.UnicastSourceIP); msg != "" {
			p.add(srcPath, msg)
		} else {
			c.warn(srcPath, "ignored: unicastPeers is empty, the instance uses multicast")
		}
	}

	// addressLabel (k0s): 0 -> 10000, 0xffffffff reserved, IPv6 only.
	labelPath := child(path, "addressLabel")
	switch in.AddressLabel {
	case 0:
		in.AddressLabel = DefaultAddressLabel
	case 0xffffffff:
		p.add(labelPath, "0xffffffff is reserved")
	default:
		// The default, written back by an earlier Validate, is no
		// user's setting: Validate stays idempotent.
		if famKnown && !out.IPv6 && in.AddressLabel != DefaultAddressLabel {
			c.warn(labelPath, "ignored for IPv4 virtual IPs")
		}
	}
	out.AddressLabel = in.AddressLabel

	out.GARP = checkGARP(p, child(path, "garp"), in.GARP)

	if out.Version != 0 && in.VRRPVersion == 0 && p.count() == n {
		in.VRRPVersion = int32(out.Version)
	}
	return out
}

// checkGARP applies keepalived's vrrp_garp_* defaults and bounds.
func checkGARP(p *problems, path string, g *GARPSpec) GARP {
	out := DefaultGARP()
	if g == nil {
		return out
	}
	dur := func(name string, d *Duration, max time.Duration, dst *time.Duration) {
		if d == nil {
			return
		}
		if d.Std() < 0 || (max > 0 && d.Std() > max) {
			if max > 0 {
				p.add(child(path, name), fmt.Sprintf("must be between 0s and %s, got %s", max, d.Std()))
			} else {
				p.add(child(path, name), fmt.Sprintf("must not be negative, got %s", d.Std()))
			}
			return
		}
		*dst = d.Std()
	}
	count := func(name string, v *int32, dst *int) {
		if v == nil {
			return
		}
		if *v < 1 || *v > maxGARPRepeat {
			p.add(child(path, name), fmt.Sprintf("must be between 1 and %d, inclusive, got %d", maxGARPRepeat, *v))
			return
		}
		*dst = int(*v)
	}
	dur("masterDelay", g.MasterDelay, 0, &out.MasterDelay)
	count("masterRepeat", g.MasterRepeat, &out.MasterRepeat)
	dur("masterRefresh", g.MasterRefresh, 0, &out.MasterRefresh)
	count("masterRefreshRepeat", g.MasterRefreshRepeat, &out.MasterRefreshRepeat)
	dur("interval", g.Interval, maxGARPInterval, &out.Interval)
	return out
}

// checkAcross adds the rules between instances that k0s does not check
// (k0s.md §1.3 "Checks that are not done"): unique names, no VIP in two
// instances, no VIP that is a node's own address, and no VRID used twice
// on one interface for one family.
func checkAcross(p *problems, vpath string, specs []VRRPInstance, insts []Instance) {
	names := map[string]int{}
	vips := map[netip.Addr]int{}
	nodes := nodeAddrs(vpath, specs, insts)
	for i, in := range insts {
		ip := index(vpath, i)
		if k, dup := names[in.Name]; dup {
			p.add(child(ip, "name"), fmt.Sprintf("duplicate of %s.name (%q)", index(vpath, k), in.Name))
		} else {
			names[in.Name] = i
		}
		for _, pfx := range in.VIPs {
			a := pfx.Addr()
			j := vipIndex(specs[i].VirtualIPs, a)
			if k, dup := vips[a]; dup {
				p.add(index(child(ip, "virtualIPs"), j), fmt.Sprintf("%s is also a virtual IP of %s", a, index(vpath, k)))
			} else {
				vips[a] = i
			}
			// A VIP must never be a node's own address: the node would
			// lose it to whichever router is master, and tools that
			// take "the node address" would pick the VIP (k0s #4664,
			// k0sctl #1100).
			for _, where := range nodes[a] {
				p.add(index(child(ip, "virtualIPs"), j), fmt.Sprintf(
					"%s is also %s, a node's own address: a virtual IP must be an address no node has", a, where))
			}
		}
	}
	checkVRIDs(p, vpath, insts)
}

// nodeAddrs maps every unicast source and peer address to the fields that
// name it ("<vpath>[k].unicastSourceIP", "<vpath>[k].unicastPeers[j]"):
// these are addresses of real nodes.
func nodeAddrs(vpath string, specs []VRRPInstance, insts []Instance) map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for k, in := range insts {
		kp := index(vpath, k)
		if in.UnicastSource.IsValid() {
			out[in.UnicastSource] = append(out[in.UnicastSource], child(kp, "unicastSourceIP"))
		}
		for _, a := range in.UnicastPeers {
			j := ipIndex(specs[k].UnicastPeers, a)
			out[a] = append(out[a], index(child(kp, "unicastPeers"), j))
		}
	}
	return out
}

// ipIndex finds the position of a in a list of addresses.
func ipIndex(list []string, a netip.Addr) int {
	for j, s := range list {
		if b, err := netip.ParseAddr(s); err == nil && b == a {
			return j
		}
	}
	return 0
}

// vipIndex finds the position of a in a virtualIPs list.
func vipIndex(list []string, a netip.Addr) int {
	for j, s := range list {
		if pfx, err := netip.ParsePrefix(s); err == nil && pfx.Addr() == a {
			return j
		}
	}
	return 0
}

// checkVRIDs reports a VRID used twice on one interface and family: VRRP
// identifies a virtual router by (interface, address family, VRID)
// (RFC 5798 §5.2.3). An empty interface is the default-route interface.
func checkVRIDs(p *problems, vpath string, insts []Instance) {
	type key struct {
		iface string
		ipv6  bool
		vrid  uint8
	}
	used := map[key]int{}
	for i, in := range insts {
		if in.VRID == 0 || len(in.VIPs) == 0 {
			continue
		}
		k := key{in.Interface, in.IPv6, in.VRID}
		if j, dup := used[k]; dup {
			where := fmt.Sprintf("interface %q", in.Interface)
			if in.Interface == "" {
				where = "the default-route interface"
			}
			p.add(child(index(vpath, i), "virtualRouterID"), fmt.Sprintf(
				"%d is also used by %s on %s for %s; VRIDs must be unique per interface and address family",
				in.VRID, index(vpath, j), where, family(in.IPv6)))
			continue
		}
		used[k] = i
	}
}

// lbAlgos are keepalived's lb_algo values k0s allows (k0s cplb.go
// KeepalivedLBAlgo).
func lbAlgos() []string { return []string{"rr", "wrr", "lc", "wlc", "lblc", "dh", "sh", "sed", "nq"} }

// lbKinds are keepalived's lb_kind values k0s allows (k0s cplb.go
// KeepalivedLBKind).
func lbKinds() []string { return []string{"NAT", "DR", "TUN"} }

func supported(v string, list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return fmt.Sprintf("unsupported value %q: supported values: %s", v, strings.Join(q, ", "))
}

// checkVirtualServers follows k0s cplb.go VirtualServer.validate, plus the
// list-map key (ipAddress unique).
func (c *Config) checkVirtualServers(p *problems, path string, vss []VirtualServer, insts []Instance) {
	if ka := c.ControlPlaneLoadBalancing.Keepalived; len(vss) > 0 && ka != nil && ka.DisableLoadBalancer {
		c.warn(path, virtualServersIgnored)
	}
	seen := map[netip.Addr]int{}
	for i := range vss {
		vs := &vss[i]
		sp := index(path, i)
		ipPath := child(sp, "ipAddress")
		if vs.IPAddress == "" {
			p.add(ipPath, "required")
		} else if a, msg := parseIP(vs.IPAddress); msg != "" {
			p.add(ipPath, msg)
		} else if k, dup := seen[a]; dup {
			p.add(ipPath, fmt.Sprintf("duplicate of %s.ipAddress", index(path, k)))
		} else {
			seen[a] = i
			if vipInstance(insts, a) < 0 {
				c.warn(ipPath, notAVIPWarning(a))
			}
		}
		if vs.LBAlgo == "" {
			vs.LBAlgo = "rr"
		} else if !slices.Contains(lbAlgos(), vs.LBAlgo) {
			p.add(child(sp, "lbAlgo"), supported(vs.LBAlgo, lbAlgos()))
		}
		if vs.LBKind == "" {
			vs.LBKind = "DR"
		} else if msg := lbKindProblem(vs.LBKind); msg != "" {
			p.add(child(sp, "lbKind"), msg)
		}
		if vs.PersistenceTimeoutSeconds == 0 {
			vs.PersistenceTimeoutSeconds = DefaultPersistenceTimeoutSeconds
		} else if t := vs.PersistenceTimeoutSeconds; t < 1 || t > 2678400 {
			p.add(child(sp, "persistenceTimeoutSeconds"), fmt.Sprintf("must be between 1 and 2678400, inclusive, got %d", t))
		}
		if vs.DelayLoop.Std() == 0 {
			vs.DelayLoop = Duration(time.Minute)
		} else {
			vs.DelayLoop = Duration(vs.DelayLoop.Std().Truncate(time.Microsecond))
			if vs.DelayLoop.Std() <= 0 {
				p.add(child(sp, "delayLoop"), "must be positive")
			}
		}
	}
}
