package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestInstanceForeignAddresses: another virtual router shares our VRID and
// password (a second k0s cluster with the defaults) but advertises another
// VIP, as its address owner (priority 255). Its adverts are dropped and
// counted (DropAddresses): our Master keeps the VIP, and when it dies while
// the stranger keeps talking, our Backup still takes over.
func TestInstanceForeignAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		met, err := NewMetrics(nil)
		if err != nil {
			t.Fatal(err)
		}
		a := startNode(t, h, instCfg("a", 200, addrA), met)
		b := startNode(t, h, instCfg("b", 100, addrB), met)
		defer stopAll(t, a, b)
		sleep(5 * time.Second)
		before := wantState(t, a, Master)
		wantState(t, b, Backup)

		stranger := h.port(netip.MustParseAddr("192.0.2.9"))
		defer stranger.Close()
		advert := func(addrs ...netip.Addr) []byte {
			ad := &Advertisement{Version: Version2, VRID: 51, Priority: 255, Interval: time.Second,
				AuthType: AuthPassword, AuthData: [8]byte{'s', 'e', 'c', 'r', 'e', 't'}, Addresses: addrs}
			b, err := ad.Marshal(stranger.addr, MulticastGroup(false), ChecksumPseudoHeader)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		foreign := advert(netip.MustParseAddr("192.0.2.200"))
		send := func(p []byte) {
			t.Helper()
			if err := stranger.WriteTo(p, MulticastGroup(false)); err != nil {
				t.Fatal(err)
			}
		}
		dropped := func(name string) float64 {
			return testutil.ToFloat64(met.dropped.WithLabelValues(name, "51", string(DropAddresses)))
		}

		const rounds = 5
		for range rounds { // one advert a second, as the stranger's Master sends them
			send(foreign)
			sleep(time.Second)
		}
		if st := wantState(t, a, Master); st.Transitions != before.Transitions || !st.VIPsConfigured {
			t.Errorf("a: %d transitions (was %d), VIPs configured %v; last %q", st.Transitions, before.Transitions, st.VIPsConfigured, st.LastReason)
		}
		if st := wantState(t, b, Backup); st.Master != addrA {
			t.Errorf("b follows %v, want %v", st.Master, addrA)
		}
		for _, n := range []string{"a", "b"} {
			if got := dropped(n); got != rounds {
				t.Errorf("%s: dropped{reason=%q} = %v, want %d", n, DropAddresses, got, rounds)
			}
		}

		// The Master dies; the stranger keeps talking. b takes over after
		// its Master_Down_Interval regardless.
		h.mute(a.port, true)
		for range 5 {
			send(foreign)
			sleep(time.Second)
		}
		wantState(t, b, Master)
		if got := dropped("b"); got != 2*rounds {
			t.Errorf("b: dropped{reason=%q} = %v, want %d", DropAddresses, got, 2*rounds)
		}

		// Control: the same stranger listing our VIP is obeyed (RFC 3768
		// §6.4.3: a higher priority stops a Master).
		send(advert(vip4))
		synctest.Wait()
		wantState(t, b, Backup)
	})
}

// TestNewInstanceFilterAddresses: the Filter's addresses default to the
// instance's and, when set, must be the same set.
func TestNewInstanceFilterAddresses(t *testing.T) {
	other := netip.MustParseAddr("192.0.2.101")
	for _, tt := range []struct {
		name   string
		filter []netip.Addr
		ok     bool
	}{
		{"default", nil, true},
		{"same", []netip.Addr{vip4}, true},
		{"other", []netip.Addr{other}, false},
		{"more", []netip.Addr{vip4, other}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := instCfg("x", 100, addrA)
			cfg.Filter.Addresses = tt.filter
			i, err := NewInstance(cfg, newHub().port(addrA), Effects{}, nil, nil)
			if !tt.ok {
				if err == nil || !strings.Contains(err.Error(), "filter addresses") {
					t.Fatalf("err = %v, want a filter addresses error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := i.cfg.Filter.Addresses; len(got) != 1 || got[0] != vip4 {
				t.Errorf("filter addresses %v, want [%v]", got, vip4)
			}
		})
	}
}
