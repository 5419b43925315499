package chart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

const dryRunNamespace = "molecule-chart-test"

// monitoringKinds have no CRD in the test world: they are decoded strictly into the
// prometheus-operator's own Go types instead of being sent to the API server.
var monitoringKinds = map[string]func() any{
	"ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	if os.Getenv("KUBECONFIG") == "" {
		t.Fatal("KUBECONFIG is not set: run tests/chart/run.sh (make chart-test), which brings up the test world")
	}
	out, stderr, err := run(stdin, "kubectl", args...)
	return out + stderr, err
}

func TestTheServerAcceptsEveryRenderedObject(t *testing.T) {
	// The namespace must exist for a dry run of namespaced objects. It is left in place: the test
	// world runs no namespace controller, so a deleted namespace would stay Terminating for good.
	ns := fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, dryRunNamespace)
	if out, err := kubectl(t, ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("namespace %s: %v %s", dryRunNamespace, err, out)
	}
	for _, f := range ciValues(t) {
		objs := render(t, "molecule-operator", dryRunNamespace, "-f", f, "--include-crds")
		var sent, typed int
		var stream bytes.Buffer
		for _, o := range objs {
			if mk, ok := monitoringKinds[o.kind()]; ok {
				strictDecode(t, filepath.Base(f), o, mk())
				typed++
				continue
			}
			stream.Write(toJSON(t, o))
			stream.WriteString("\n")
			sent++
		}
		out, err := kubectl(t, stream.String(), "apply", "--dry-run=server", "--server-side", "--force-conflicts",
			"--field-manager=molecule-chart-test", "-f", "-")
		if err != nil {
			t.Errorf("%s: the API server refused objects: %v\n%s", filepath.Base(f), err, out)
			continue
		}
		if n := strings.Count(out, "(server dry run)"); n != sent {
			t.Errorf("%s: %d objects sent, %d accepted:\n%s", filepath.Base(f), sent, n, out)
		}
		t.Logf("%s: %d objects accepted by the API server (dry run), %d checked against the prometheus-operator types", filepath.Base(f), sent, typed)
	}
}

// strictDecode decodes o into a typed object, refusing unknown fields.
func strictDecode(t *testing.T, file string, o obj, into any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(toJSON(t, o)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Errorf("%s: %s does not match the prometheus-operator types: %v", file, o.id(), err)
	}
}

func TestStrictDecodeRefusesAnUnknownField(t *testing.T) {
	// The typed check can fail: a misspelt field is refused.
	bad := obj{"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
		"metadata": map[string]any{"name": "x"}, "spec": map[string]any{"endpoint": []any{}}}
	dec := json.NewDecoder(bytes.NewReader(toJSON(t, bad)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&monitoringv1.ServiceMonitor{}); err == nil {
		t.Error("spec.endpoint (for endpoints) was accepted")
	}
}
