package health

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

const fixtures = "../../fixtures"

func scripts(t *testing.T) Scripts {
	t.Helper()
	s, err := LoadScripts("../../../../charts/molecule-operator/files/health")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every fixture (hand-written and captured) gives the health and kstatus status its expect.yaml
// names, and every expectation names an existing fixture.
func TestFixtures(t *testing.T) {
	reports, failures, err := scripts(t).CheckAll([]string{fixtures}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range failures {
		t.Error(f)
	}
	seen := map[string]int{}
	for _, r := range reports {
		seen[r.ArgoCD.Status]++
		t.Logf("%s: argocd=%s %q kstatus=%s", filepath.Base(r.File), r.ArgoCD.Status, r.ArgoCD.Message, r.KStatus.Status)
	}
	for _, want := range []string{"Healthy", "Progressing", "Degraded", "Suspended"} {
		if seen[want] == 0 {
			t.Errorf("no fixture is %s", want)
		}
	}
	err = filepath.WalkDir(fixtures, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		exp, err := LoadExpectations(path)
		for name := range exp {
			if _, statErr := os.Stat(filepath.Join(path, name)); statErr != nil {
				t.Errorf("%s/expect.yaml names %s, which does not exist", path, name)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A wrong expectation is reported (the comparison can fail).
func TestVerifyReportsAMismatch(t *testing.T) {
	rep, err := scripts(t).Check(filepath.Join(fixtures, "workspace-gpu-mismatch.json"))
	if err != nil {
		t.Fatal(err)
	}
	bad := Verify(rep, map[string]Expectation{"workspace-gpu-mismatch.json": {ArgoCD: "Healthy", KStatus: "Current", Message: "nope"}})
	if len(bad) != 3 {
		t.Fatalf("expected 3 differences, got %q", bad)
	}
	if bad := Verify(rep, map[string]Expectation{}); len(bad) != 1 {
		t.Fatalf("a fixture without expectation must fail, got %q", bad)
	}
}

var methodCall = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_\]\)]*\s*:\s*[A-Za-z_][A-Za-z0-9_]*\s*[("{]`)

// The scripts run as an argocd-cm check without useOpenLibs: no string or math library, and no
// string methods (which need the string library's metatable).
func TestScriptsNeedNoStringOrMath(t *testing.T) {
	l := NewState()
	defer l.Close()
	for _, lib := range []string{"string", "math", "io"} {
		if l.GetGlobal(lib) != lua.LNil {
			t.Fatalf("the Argo CD state must not have %s", lib)
		}
	}
	for kind, src := range scripts(t) {
		code := stripComments(src)
		for _, banned := range []string{"string.", "math.", "string[", "math[", "require", "os."} {
			if strings.Contains(code, banned) {
				t.Errorf("%s script uses %q", kind, banned)
			}
		}
		if m := methodCall.FindString(code); m != "" {
			t.Errorf("%s script calls a method (%q): string methods need the string library", kind, m)
		}
		if _, err := RunLua(map[string]any{"kind": kind}, src); err != nil {
			t.Errorf("%s script fails on an object without metadata or status: %v", kind, err)
		}
	}
	// Control: a script that needs the string library fails in this state.
	if _, err := RunLua(map[string]any{}, `local s = "a-b"; return {status = "Healthy", message = string.upper(s)}`); err == nil {
		t.Fatal("string.upper must fail without the string library")
	}
	if _, err := RunLua(map[string]any{}, `local s = "a-b"; return {status = "Healthy", message = s:upper()}`); err == nil {
		t.Fatal("a string method must fail without the string library")
	}
}

func stripComments(src string) string {
	var out []string
	for _, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// The runner behaves as Argo CD's: an unknown status becomes Unknown, a non-table is an error, and
// a script is stopped after one second.
func TestArgoCDRunnerSemantics(t *testing.T) {
	r, err := RunLua(map[string]any{}, `return {status = "Fine", message = "x"}`)
	if err != nil || r.Status != "Unknown" || r.Message != InvalidHealthStatus {
		t.Fatalf("invalid status: %+v %v", r, err)
	}
	if _, err := RunLua(map[string]any{}, `return "Healthy"`); err == nil {
		t.Fatal("a non-table result must be an error")
	}
	r, err = RunLua(map[string]any{"a": []any{map[string]any{"b": int64(3)}}, "n": nil}, `
		if obj.n ~= nil then return {status = "Degraded"} end
		return {status = "Healthy", message = "b=" .. obj.a[1].b}`)
	if err != nil || r.Status != "Healthy" || r.Message != "b=3" {
		t.Fatalf("obj global: %+v %v", r, err)
	}
	start := time.Now()
	if _, err := RunLua(map[string]any{}, `while true do end`); err == nil {
		t.Fatal("an endless script must be stopped")
	}
	if d := time.Since(start); d < Timeout || d > 3*Timeout {
		t.Fatalf("stopped after %v, expected about %v", d, Timeout)
	}
}

// docs/gitops.md carries the scripts in its argocd-cm snippet: they must be the chart's files.
func TestGitopsDocSnippetIsTheChartsScripts(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/gitops.md")
	if err != nil {
		t.Fatal(err)
	}
	for kind, src := range scripts(t) {
		key := "resource.customizations.health.moleculesai.app_" + kind + ": |\n"
		var b strings.Builder
		b.WriteString(key)
		for _, line := range strings.Split(strings.TrimRight(src, "\n"), "\n") {
			if line != "" {
				b.WriteString("    " + line)
			}
			b.WriteString("\n")
		}
		if !strings.Contains(string(doc), b.String()) {
			t.Errorf("docs/gitops.md: the %s snippet differs from charts/molecule-operator/files/health (regenerate it)", kind)
		}
	}
}
