package disttest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/vrrp"
)

var (
	alertRules = filepath.Join(root, "dist/prometheus/nlb-alerts.yaml")
	alertTests = filepath.Join(root, "dist/prometheus/nlb-alerts_test.yaml")
)

// TestAlertRules checks the alert rules with promtool (Debian's prometheus
// package): check rules, and the unit tests of nlb-alerts_test.yaml (each
// alert fires on its failure, after its for:, with its labels and
// annotations, and not on the healthy series beside it).
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	for _, args := range [][]string{{"check", "rules", alertRules}, {"test", "rules", alertTests}} {
		out, err := runTool(t, promtool, args...)
		if err != nil || !strings.Contains(out, "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// describer records the descriptions of the metrics registered with it.
type describer struct{ descs map[string][]string } // name -> variable labels

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		m := descName.FindStringSubmatch(desc.String())
		if m == nil {
			continue
		}
		d.descs[m[1]] = strings.Split(m[2], ",")
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return true }

// descName reads a Desc's String(): its name and variable labels.
var descName = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// metricName matches nlb's metric names in an expression.
var metricName = regexp.MustCompile(`\bnlb_[a-z_]+\b`)

// TestAlertMetrics checks that every nlb metric the rules use is one nlb
// exports, with the labels the rules read: the VRRP and proxy metrics as
// their packages register them, nlb_controller_healthy by its name in
// package cplb (it is registered deep inside the controller).
func TestAlertMetrics(t *testing.T) {
	d := &describer{descs: map[string][]string{}}
	if _, err := vrrp.NewMetrics(d); err != nil {
		t.Fatal(err)
	}
	cfg := lb.Config{Listen: []string{"127.0.0.1:0"}, Backends: []string{"127.0.0.1:1"}}
	cfg.SetDefaults()
	if _, err := lb.New(cfg, lb.Options{Registerer: d}); err != nil {
		t.Fatal(err)
	}
	health, err := os.ReadFile(filepath.Join(root, "cplb/health.go"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(health), `Name: "nlb_controller_healthy"`) {
		d.descs["nlb_controller_healthy"] = nil
	}

	b, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	// The labels each rule groups or matches by, other than the target's
	// (job, instance): exported_instance is the VRRP metrics' "instance".
	needs := map[string][]string{
		"exported_instance": {"instance"},
		"vrid":              {"vrid"},
		"reason":            {"reason"},
		"backend":           {"backend"},
	}
	byClause := regexp.MustCompile(`\b(?:by|without|on) \(([^)]*)\)`)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			names := metricName.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: no nlb metric in %q", r.Alert, r.Expr)
			}
			for _, name := range names {
				if _, ok := d.descs[name]; !ok {
					t.Errorf("%s: nlb exports no metric %s", r.Alert, name)
				}
			}
			for _, m := range byClause.FindAllStringSubmatch(r.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					l = strings.TrimSpace(l)
					want, ok := needs[l]
					if !ok {
						continue
					}
					found := false
					for _, name := range names {
						for _, w := range want {
							found = found || slices.Contains(d.descs[name], w)
						}
					}
					if !found {
						t.Errorf("%s: groups by %s, but none of %q has the label %q", r.Alert, l, names, want)
					}
				}
			}
		}
	}
	if n != 6 {
		t.Errorf("%d rules, want the 6 of issue 14", n)
	}
}
