package health

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Report is what both tools say about one object.
type Report struct {
	File    string
	Kind    string
	Name    string
	ArgoCD  Result
	KStatus Result
}

// Scripts maps a kind to its health script's text.
type Scripts map[string]string

// LoadScripts reads <dir>/workspace.lua and <dir>/tenant.lua.
func LoadScripts(dir string) (Scripts, error) {
	out := Scripts{}
	for kind, file := range map[string]string{"Workspace": "workspace.lua", "Tenant": "tenant.lua"} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return nil, err
		}
		out[kind] = string(b)
	}
	return out, nil
}

// DefaultScriptsDir finds charts/molecule-operator/files/health from the working directory up.
func DefaultScriptsDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		candidate := filepath.Join(dir, "charts", "molecule-operator", "files", "health")
		if st, err := os.Stat(candidate); err == nil && st.IsDir() {
			return candidate
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Check reads one object (`kubectl get -o json` shape) and evaluates both.
func (s Scripts) Check(file string) (Report, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return Report{}, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return Report{}, fmt.Errorf("%s: %w", file, err)
	}
	rep := Report{File: file, Kind: u.GetKind(), Name: u.GetName()}
	script, ok := s[u.GetKind()]
	if !ok {
		return rep, fmt.Errorf("%s: no health script for kind %q", file, u.GetKind())
	}
	if rep.ArgoCD, err = RunLua(u.Object, script); err != nil {
		return rep, fmt.Errorf("%s: lua: %w", file, err)
	}
	ks, err := status.Compute(u)
	if err != nil {
		return rep, fmt.Errorf("%s: kstatus: %w", file, err)
	}
	rep.KStatus = Result{Status: ks.Status.String(), Message: ks.Message}
	return rep, nil
}

// ObjectFiles expands files and directories (recursively) into the *.json object files.
func ObjectFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") && filepath.Base(path) != ExpectFile+".json" {
				out = append(out, path)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
