// Command healthcheck prints, for each Workspace or Tenant object file (JSON, as `kubectl get -o
// json` writes it) or directory of them, the health Argo CD gives it with molecule-operator's Lua
// checks and the status kstatus (Flux) computes. With -verify it compares both with the expect.yaml
// beside each file and exits 1 on any difference.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/moleculesai/molecule-operator/tests/health/internal/health"
)

func main() {
	scripts := flag.String("scripts", "", "directory of workspace.lua and tenant.lua (default: charts/molecule-operator/files/health above the working directory)")
	verify := flag.Bool("verify", false, "compare with expect.yaml beside each file; exit 1 on a difference")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: healthcheck [-scripts DIR] [-verify] FILE|DIR...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	dir := *scripts
	if dir == "" {
		dir = health.DefaultScriptsDir()
	}
	s, err := health.LoadScripts(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		os.Exit(2)
	}
	reports, failures, err := s.CheckAll(flag.Args(), *verify)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		os.Exit(2)
	}
	for _, r := range reports {
		fmt.Printf("%s\t%s/%s\targocd=%s %q\tkstatus=%s %q\n", r.File, r.Kind, r.Name, r.ArgoCD.Status, r.ArgoCD.Message, r.KStatus.Status, r.KStatus.Message)
	}
	for _, f := range failures {
		fmt.Fprintf(os.Stderr, "FAIL %s\n", f)
	}
	if len(failures) > 0 {
		os.Exit(1)
	}
	fmt.Printf("%d objects checked\n", len(reports))
}
