package main

import (
	"fmt"
	"strings"

	"github.com/nlb-dev/nlb/internal/stats"
)

// rowKey identifies a row of the table: one setup and stop mode.
type rowKey struct {
	vrrp     int
	advertMS int64
	stop     string
}

// markdown renders the medians per implementation, with the goals of
// issue 2: nlb's median failover no slower than keepalived's in every row,
// and nlb's median overhead under 20 ms.
func markdown(rs []result, impls []string) string {
	var keys []rowKey
	fail := map[rowKey]map[string][]float64{}
	over := map[rowKey]map[string][]float64{}
	for _, r := range rs {
		k := rowKey{r.VRRP, r.AdvertMS, r.Stop}
		if fail[k] == nil {
			keys = append(keys, k)
			fail[k], over[k] = map[string][]float64{}, map[string][]float64{}
		}
		fail[k][r.Impl] = append(fail[k][r.Impl], r.FailoverMS)
		over[k][r.Impl] = append(over[k][r.Impl], r.OverheadMS)
	}
	var b strings.Builder
	b.WriteString("| VRRP | advert | stop | runs |")
	for _, im := range impls {
		fmt.Fprintf(&b, " %s failover ms | %s overhead ms |", im, im)
	}
	b.WriteString(" nlb/keepalived failover | nlb - keepalived ms | goals met |\n|---|---|---|---|")
	for range impls {
		b.WriteString("---|---|")
	}
	b.WriteString("---|---|---|\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "| v%d | %d ms | %s | %d |", k.vrrp, k.advertMS, k.stop, len(fail[k][impls[0]]))
		for _, im := range impls {
			fmt.Fprintf(&b, " %.1f | %.1f |", stats.Median(fail[k][im]), stats.Median(over[k][im]))
		}
		nf, kf := stats.Median(fail[k]["nlb"]), stats.Median(fail[k]["keepalived"])
		ratio, diff, met := "n/a", "n/a", "n/a"
		if len(fail[k]["nlb"]) > 0 && len(fail[k]["keepalived"]) > 0 && kf > 0 {
			ratio = fmt.Sprintf("%.3f", nf/kf)
			diff = fmt.Sprintf("%+.3f", nf-kf)
			ok := nf <= kf && stats.Median(over[k]["nlb"]) < 20
			met = map[bool]string{true: "yes", false: "NO"}[ok]
		}
		fmt.Fprintf(&b, " %s | %s | %s |\n", ratio, diff, met)
	}
	b.WriteString("\nfailover: signal to the VIP answering ARP on the new master. overhead: the old master's last advertisement to that moment, minus Master_Down_Interval (kill) or Skew_Time (term). Goals: nlb failover <= keepalived, nlb overhead < 20 ms. The bystander probes every 0.5 ms: differences well under that are within the measurement's resolution.\n")
	return b.String()
}
