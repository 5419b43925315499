// Package chart tests the Helm chart in charts/molecule-operator with a helm built from Go modules
// (tests/chart/install-helm.sh) and the test world's kube-apiserver (tests/chart/run.sh sets HELM
// and KUBECONFIG).
package chart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const chartDir = "../../charts/molecule-operator"

// obj is one rendered Kubernetes object.
type obj map[string]any

func (o obj) kind() string       { return str(o["kind"]) }
func (o obj) apiVersion() string { return str(o["apiVersion"]) }
func (o obj) meta() map[string]any {
	m, _ := o["metadata"].(map[string]any)
	return m
}
func (o obj) name() string      { return str(o.meta()["name"]) }
func (o obj) namespace() string { return str(o.meta()["namespace"]) }
func (o obj) group() string {
	if i := strings.Index(o.apiVersion(), "/"); i >= 0 {
		return o.apiVersion()[:i]
	}
	return ""
}
func (o obj) id() string {
	return fmt.Sprintf("%s/%s %s/%s", o.group(), o.kind(), o.namespace(), o.name())
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// dig follows a path of map keys and list indexes.
func dig(v any, path ...any) any {
	if o, ok := v.(obj); ok {
		v = map[string]any(o)
	}
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		t.Fatal("HELM is not set: run tests/chart/run.sh (make chart-test)")
	}
	return h
}

// ciValues lists charts/molecule-operator/ci/*-values.yaml.
func ciValues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("expected at least 3 ci values files, got %v (%v)", files, err)
	}
	sort.Strings(files)
	return files
}

// run runs a command and returns stdout, stderr and its error.
func run(stdin string, name string, args ...string) (string, string, error) {
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// template runs `helm template RELEASE chart -n NS args...`.
func template(t *testing.T, release, ns string, args ...string) (string, string, error) {
	t.Helper()
	a := append([]string{"template", release, chartDir, "--namespace", ns}, args...)
	return run("", helmBin(t), a...)
}

// render is template that must succeed, parsed into objects.
func render(t *testing.T, release, ns string, args ...string) []obj {
	t.Helper()
	out, stderr, err := template(t, release, ns, args...)
	if err != nil {
		t.Fatalf("helm template %s %v: %v\n%s", release, args, err, stderr)
	}
	objs, err := parse(out)
	if err != nil {
		t.Fatalf("parse helm template output: %v", err)
	}
	return objs
}

// parse splits a multi-document YAML stream into objects (empty documents dropped).
func parse(text string) ([]obj, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var objs []obj
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if o != nil {
			objs = append(objs, obj(o))
		}
	}
}

func find(objs []obj, kind string) []obj {
	var out []obj
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func one(t *testing.T, objs []obj, kind string) obj {
	t.Helper()
	f := find(objs, kind)
	if len(f) != 1 {
		t.Fatalf("expected one %s, rendered %d", kind, len(f))
	}
	return f[0]
}

// containerEnv returns the operator container's env as NAME -> value (or "secret:NAME/KEY").
func containerEnv(t *testing.T, objs []obj) map[string]string {
	t.Helper()
	d := one(t, objs, "Deployment")
	env := map[string]string{}
	list, _ := dig(d, "spec", "template", "spec", "containers", 0, "env").([]any)
	for _, e := range list {
		name := str(dig(e, "name"))
		if _, dup := env[name]; dup {
			t.Errorf("env %s is set twice", name)
		}
		if ref := dig(e, "valueFrom", "secretKeyRef"); ref != nil {
			env[name] = "secret:" + str(dig(ref, "name")) + "/" + str(dig(ref, "key"))
		} else {
			env[name] = str(dig(e, "value"))
		}
	}
	return env
}

// toJSON re-encodes a decoded YAML object as JSON.
func toJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("json: %v", err)
	}
	return bytes.TrimSpace(b.Bytes())
}

// clusterScoped are the kinds the chart renders without a namespace.
var clusterScoped = map[string]bool{
	"ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

// duplicates returns the ids rendered more than once across the given renders.
func duplicates(renders ...[]obj) []string {
	seen := map[string]int{}
	for _, objs := range renders {
		for _, o := range objs {
			seen[o.id()]++
		}
	}
	var dup []string
	for id, n := range seen {
		if n > 1 {
			dup = append(dup, id)
		}
	}
	sort.Strings(dup)
	return dup
}
