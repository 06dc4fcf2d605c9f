package nlbtest

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/vrrp"
)

// TestK0sConfig: config.Load accepts what K0sConfig renders and reads
// back every value it was given; zero fields leave k0s's defaults.
func TestK0sConfig(t *testing.T) {
	zero, no, weight := time.Duration(0), false, -20
	k := K0sConfig{
		APIPort: 7443, ProxyPort: 6555, Steering: config.SteeringNFTables,
		Health: &Health{Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Fall: 4, Rise: 6, Weight: &weight},
		Instances: []VRRPInstance{{
			Name: "v2", VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24"), netip.MustParsePrefix("192.0.2.101/32")},
			Interface: "eth0", VRID: 51, Priority: 150, Version: 2, Interval: 2 * time.Second, AuthPass: "pw",
		}, {
			VIPs: []netip.Prefix{netip.MustParsePrefix("2001:db8::100/64")}, Interface: "eth1", VRID: 52,
			Interval: 30 * time.Millisecond, AuthPass: "pw", Preempt: &no,
			UnicastSource: netip.MustParseAddr("2001:db8::11"), UnicastPeers: []netip.Addr{netip.MustParseAddr("2001:db8::12")},
			GARPMasterDelay: &zero,
		}, {
			VIPs: []netip.Prefix{netip.MustParsePrefix("198.51.100.100/24")}, VRID: 53, Version: 3,
			Interval: 100 * time.Millisecond, AuthPass: "pw", ChecksumAsV2: true,
		}},
		VirtualServers: []netip.Addr{netip.MustParseAddr("192.0.2.101")},
	}
	c, err := config.Load(bytes.NewReader(k.YAML()))
	if err != nil {
		t.Fatalf("config.Load: %v\n%s", err, k.YAML())
	}
	if c.Form != config.FormClusterConfig {
		t.Errorf("form %v, want a ClusterConfig", c.Form)
	}
	want := config.Controller{
		APIPort: 7443, ProxyPort: 6555, Steering: config.SteeringNFTables,
		Health: config.Health{Enabled: true, Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Fall: 4, Rise: 6, Weight: -20,
			StartupGrace: config.DefaultHealthStartupGrace},
	}
	got := c.Controller()
	if vs := got.VirtualServers; len(vs) != 1 || vs[0].VIP != netip.MustParseAddr("192.0.2.101") || vs[0].Instance != 0 ||
		vs[0].LBKind != "DR" || vs[0].PersistenceTimeout != 360*time.Second {
		t.Errorf("virtual servers %+v, want 192.0.2.101 of instance 0 with k0s's defaults", vs)
	}
	got.VirtualServers = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("controller %+v, want %+v", got, want)
	}
	insts := c.VRRPInstances()
	if len(insts) != len(k.Instances) {
		t.Fatalf("%d instances, want %d", len(insts), len(k.Instances))
	}
	for i, in := range k.Instances {
		got := insts[i]
		ver := vrrp.Version(in.Version)
		if in.Version == 0 {
			ver = vrrp.Version3 // IPv6
		}
		if got.Interface != in.Interface || int(got.VRID) != in.VRID || got.Version != ver || got.Interval != in.Interval ||
			!reflect.DeepEqual(got.VIPs, in.VIPs) || got.UnicastSource != in.UnicastSource ||
			!reflect.DeepEqual(got.UnicastPeers, in.UnicastPeers) || got.Preempt != (in.Preempt == nil || *in.Preempt) {
			t.Errorf("instance %d: read back %+v from %+v", i, got, in)
		}
		if in.Name != "" && got.Name != in.Name {
			t.Errorf("instance %d: name %q, want %q", i, got.Name, in.Name)
		}
		if in.Priority != 0 && int(got.Priority) != in.Priority {
			t.Errorf("instance %d: priority %d, want %d", i, got.Priority, in.Priority)
		}
		if (got.ChecksumForm == vrrp.ChecksumMessageOnly) != in.ChecksumAsV2 {
			t.Errorf("instance %d: checksum form %v, v3ChecksumAsV2 %v", i, got.ChecksumForm, in.ChecksumAsV2)
		}
		if wantDelay := config.DefaultGARP().MasterDelay; in.GARPMasterDelay != nil {
			if got.GARP.MasterDelay != *in.GARPMasterDelay {
				t.Errorf("instance %d: GARP master delay %v, want %v", i, got.GARP.MasterDelay, *in.GARPMasterDelay)
			}
		} else if got.GARP.MasterDelay != wantDelay {
			t.Errorf("instance %d: GARP master delay %v, want the default %v", i, got.GARP.MasterDelay, wantDelay)
		}
	}

	// Zero fields are left out: k0s's defaults.
	min := K0sConfig{Instances: []VRRPInstance{{VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")}, AuthPass: "pw"}}}
	c, err = config.Load(bytes.NewReader(min.YAML()))
	if err != nil {
		t.Fatalf("config.Load: %v\n%s", err, min.YAML())
	}
	ctl, in := c.Controller(), c.VRRPInstances()[0]
	if ctl.APIPort != config.DefaultAPIPort || ctl.ProxyPort != config.DefaultUserSpaceProxyPort || ctl.Steering != config.SteeringAuto ||
		ctl.Health.Interval != config.DefaultHealthInterval || in.VRID != config.DefaultVirtualRouterID ||
		in.Priority != config.DefaultPriority || in.Version != vrrp.Version2 || in.Interval != time.Second || !in.Preempt {
		t.Errorf("defaults: %+v %+v\n%s", ctl, in, min.YAML())
	}
}
