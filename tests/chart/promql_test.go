package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// exprs returns the alert expressions of the PrometheusRule and the dashboard's queries (with the
// Grafana variable $job given a value).
func exprs(t *testing.T, objs []obj) map[string]string {
	t.Helper()
	out := map[string]string{}
	rules, _ := dig(one(t, objs, "PrometheusRule"), "spec", "groups", 0, "rules").([]any)
	for _, r := range rules {
		out["alert "+str(dig(r, "alert"))] = str(dig(r, "expr"))
	}
	for _, cm := range find(objs, "ConfigMap") {
		if dig(cm, "metadata", "labels", "grafana_dashboard") != "1" {
			continue
		}
		var dash struct {
			Panels []struct {
				Title   string
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal([]byte(str(dig(cm, "data", "molecule.json"))), &dash); err != nil {
			t.Fatalf("dashboard JSON: %v", err)
		}
		for _, p := range dash.Panels {
			for i, q := range p.Targets {
				out["panel "+p.Title+" #"+string(rune('A'+i))] = strings.ReplaceAll(q.Expr, "$job", "molecule-operator-metrics")
			}
		}
	}
	return out
}

func TestAlertAndDashboardQueriesParse(t *testing.T) {
	objs := render(t, "molecule-operator", "molecule-system", "-f", filepath.Join(chartDir, "ci", "production-values.yaml"))
	all := exprs(t, objs)
	if len(all) < 20 {
		t.Fatalf("only %d queries found", len(all))
	}
	p := parser.NewParser(parser.Options{})
	for where, e := range all {
		if _, err := p.ParseExpr(e); err != nil {
			t.Errorf("%s: %q does not parse: %v", where, e, err)
		}
	}
	// The parser can fail: a query with an unbalanced brace is refused.
	if _, err := p.ParseExpr(`sum(molecule_leader{job="x")`); err == nil {
		t.Error("an unbalanced query parsed")
	}
}

// exportedMetrics reads the series names the operator exports from crates/controller/src/metrics.rs:
// the registry's prefix, each registered name, `_total` for counters and the histogram series.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../../crates/controller/src/metrics.rs")
	if err != nil {
		t.Fatal(err)
	}
	prefix := regexp.MustCompile(`Registry::with_prefix\("([a-z_]+)"\)`).FindSubmatch(src)
	if prefix == nil {
		t.Fatal("metrics.rs: no Registry::with_prefix")
	}
	types := map[string]string{}
	for _, m := range regexp.MustCompile(`pub (\w+): (?:Family<\w+, )?(Counter|Gauge|Histogram)>?,`).FindAllSubmatch(src, -1) {
		types[string(m[1])] = string(m[2])
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`register\(\s*"(\w+)",\s*"[^"]*",\s*(\w+)\.clone\(\)`).FindAllSubmatch(src, -1) {
		base := string(prefix[1]) + "_" + string(m[1])
		switch types[string(m[2])] {
		case "Counter":
			names[base+"_total"] = true
		case "Gauge":
			names[base] = true
		case "Histogram":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[base+s] = true
			}
		default:
			t.Errorf("metrics.rs: %s is registered from %s, whose type is not found", base, m[2])
		}
	}
	if len(names) < 15 {
		t.Fatalf("metrics.rs: only %d series found: %v", len(names), names)
	}
	return names
}

func TestAlertsAndPanelsUseMetricsTheOperatorExports(t *testing.T) {
	objs := render(t, "molecule-operator", "molecule-system", "-f", filepath.Join(chartDir, "ci", "production-values.yaml"))
	exported := exportedMetrics(t)
	for where, e := range exprs(t, objs) {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(e)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		for _, vs := range parser.ExtractSelectors(expr) {
			for _, m := range vs {
				if m.Name == "__name__" && !exported[m.Value] {
					t.Errorf("%s: %s is not a metric of the operator (%q)", where, m.Value, e)
				}
			}
		}
	}
	// The check can fail: a counter without its _total suffix is not exported.
	if exported["molecule_reconciles"] || !exported["molecule_reconciles_total"] || !exported["molecule_leader"] {
		t.Errorf("exported series misread: %v", exported)
	}
}

func TestReconcileErrorAlertIgnoresWaiting(t *testing.T) {
	// A Waiting outcome is a requeue while AWS finishes (deletes, erasures): counting it as an
	// error would keep MoleculeReconcileErrors firing on any fleet that deletes things.
	objs := render(t, "molecule-operator", "molecule-system", "-f", filepath.Join(chartDir, "ci", "production-values.yaml"))
	e := exprs(t, objs)["alert MoleculeReconcileErrors"]
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, vs := range parser.ExtractSelectors(expr) {
		for _, m := range vs {
			if m.Name == "outcome" && (m.Matches("Waiting") || m.Matches("ok") || !m.Matches("CloudRejected")) {
				t.Errorf("outcome matcher %s: Waiting and ok must not match, CloudRejected must", m)
			}
		}
	}
}
