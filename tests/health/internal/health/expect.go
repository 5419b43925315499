package health

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// ExpectFile is the sidecar in each fixture directory: expect.yaml, mapping a fixture's file name
// to what both tools must report.
const ExpectFile = "expect"

// Expectation of one fixture. Message, when set, must be contained in the Argo CD message.
type Expectation struct {
	ArgoCD  string `json:"argocd"`
	KStatus string `json:"kstatus"`
	Message string `json:"message,omitempty"`
}

// LoadExpectations reads <dir>/expect.yaml (empty map when there is none).
func LoadExpectations(dir string) (map[string]Expectation, error) {
	out := map[string]Expectation{}
	raw, err := os.ReadFile(filepath.Join(dir, ExpectFile+".yaml"))
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(raw, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ExpectFile+".yaml"), err)
	}
	return out, nil
}

// Verify compares a report with the expectation for its file; every fixture must have one.
func Verify(rep Report, exp map[string]Expectation) []string {
	e, ok := exp[filepath.Base(rep.File)]
	if !ok {
		return []string{fmt.Sprintf("%s: no expectation in %s.yaml", rep.File, ExpectFile)}
	}
	var bad []string
	if rep.ArgoCD.Status != e.ArgoCD {
		bad = append(bad, fmt.Sprintf("%s: Argo CD health %s (%q), expected %s", rep.File, rep.ArgoCD.Status, rep.ArgoCD.Message, e.ArgoCD))
	}
	if rep.KStatus.Status != e.KStatus {
		bad = append(bad, fmt.Sprintf("%s: kstatus %s (%q), expected %s", rep.File, rep.KStatus.Status, rep.KStatus.Message, e.KStatus))
	}
	if e.Message != "" && !strings.Contains(rep.ArgoCD.Message, e.Message) {
		bad = append(bad, fmt.Sprintf("%s: Argo CD message %q does not contain %q", rep.File, rep.ArgoCD.Message, e.Message))
	}
	return bad
}

// CheckAll evaluates every object file under paths and, when verify is set, compares each with
// the expect.yaml of its directory. It returns the reports and every failure.
func (s Scripts) CheckAll(paths []string, verify bool) ([]Report, []string, error) {
	files, err := ObjectFiles(paths)
	if err != nil {
		return nil, nil, err
	}
	var reports []Report
	var failures []string
	expectations := map[string]map[string]Expectation{}
	for _, f := range files {
		rep, err := s.Check(f)
		if err != nil {
			failures = append(failures, err.Error())
			continue
		}
		reports = append(reports, rep)
		if !verify {
			continue
		}
		dir := filepath.Dir(f)
		if _, ok := expectations[dir]; !ok {
			if expectations[dir], err = LoadExpectations(dir); err != nil {
				return nil, nil, err
			}
		}
		failures = append(failures, Verify(rep, expectations[dir])...)
	}
	return reports, failures, nil
}
