package main

import (
	"fmt"
	"math"
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
	stale := map[rowKey]map[string][]float64{} // +Inf: not gone within the window
	window := map[rowKey]float64{}
	for _, r := range rs {
		k := rowKey{r.VRRP, r.AdvertMS, r.Stop}
		if fail[k] == nil {
			keys = append(keys, k)
			fail[k], over[k], stale[k] = map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
		}
		fail[k][r.Impl] = append(fail[k][r.Impl], r.FailoverMS)
		over[k][r.Impl] = append(over[k][r.Impl], r.OverheadMS)
		v := r.StaleVIPMS
		if !r.StaleGone {
			v = math.Inf(1)
		}
		stale[k][r.Impl] = append(stale[k][r.Impl], v)
		window[k] = max(window[k], r.StaleWindowMS)
	}
	var b strings.Builder
	b.WriteString("| VRRP | advert | stop | runs |")
	for _, im := range impls {
		fmt.Fprintf(&b, " %s failover ms | %s overhead ms | %s stale VIP ms |", im, im, im)
	}
	b.WriteString(" nlb/keepalived failover | nlb - keepalived ms | goals met |\n|---|---|---|---|")
	for range impls {
		b.WriteString("---|---|---|")
	}
	b.WriteString("---|---|---|\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "| v%d | %d ms | %s | %d |", k.vrrp, k.advertMS, k.stop, len(fail[k][impls[0]]))
		for _, im := range impls {
			fmt.Fprintf(&b, " %.1f | %.1f | %s |", stats.Median(fail[k][im]), stats.Median(over[k][im]), staleCell(stale[k][im], window[k]))
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
	b.WriteString("\nstale VIP: signal to the VIP leaving the old master's interface (until then its kernel answers ARP for it beside the new master's), median; \"not gone\" when the median run still had it at the end of the observation window (nlb's VIP lifetime + 3 s after the signal).\n")
	b.WriteString("\nfailover: signal to the VIP answering ARP on the new master. overhead: the old master's last advertisement to that moment, minus Master_Down_Interval (kill) or Skew_Time (term). Goals: nlb failover <= keepalived, nlb overhead < 20 ms. The bystander probes every 0.5 ms: differences well under that are within the measurement's resolution.\n")
	return b.String()
}

// staleCell formats the median stale-VIP time of a row; +Inf values are
// runs whose VIP was still there at the end of the window.
func staleCell(vs []float64, windowMS float64) string {
	if len(vs) == 0 {
		return "n/a"
	}
	m := stats.Median(vs)
	if math.IsInf(m, 1) {
		return fmt.Sprintf("not gone in %.0f s", windowMS/1000)
	}
	return fmt.Sprintf("%.0f", m)
}
