package chart

import (
	"encoding/json"
	"path/filepath"
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
