package chart

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

var required = map[string]string{
	"config.environment": "MOLECULE_ENV",
	"aws.region":         "AWS_REGION",
	"aws.vpcId":          "EC2_VPC_ID",
	"aws.subnetId":       "EC2_SUBNET_ID",
}

func TestLintStrictWithEachCIValuesFile(t *testing.T) {
	for _, f := range ciValues(t) {
		out, stderr, err := run("", helmBin(t), "lint", "--strict", chartDir, "-f", f)
		if err != nil || !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm lint --strict -f %s: %v\n%s%s", filepath.Base(f), err, out, stderr)
		}
	}
}

func TestEachCIValuesFileRendersAWorkingInstall(t *testing.T) {
	for _, f := range ciValues(t) {
		objs := render(t, "molecule-operator", "molecule-system", "-f", f)
		env := containerEnv(t, objs)
		for value, name := range required {
			if env[name] == "" {
				t.Errorf("%s: %s (from %s) is not set", filepath.Base(f), name, value)
			}
		}
		if env["METRICS_ADDR"] != "0.0.0.0:8080" {
			t.Errorf("%s: METRICS_ADDR=%q", filepath.Base(f), env["METRICS_ADDR"])
		}
		svc := one(t, objs, "Service")
		if dig(svc, "spec", "ports", 0, "port") != 8080 || dig(svc, "spec", "ports", 0, "targetPort") != "metrics" {
			t.Errorf("%s: metrics Service ports %v", filepath.Base(f), dig(svc, "spec", "ports"))
		}
		sa := str(dig(one(t, objs, "Deployment"), "spec", "template", "spec", "serviceAccountName"))
		if len(find(objs, "ServiceAccount")) != 1 || one(t, objs, "ServiceAccount").name() != sa {
			t.Errorf("%s: the Deployment's ServiceAccount %q is not rendered", filepath.Base(f), sa)
		}
		for _, o := range objs {
			if !clusterScoped[o.kind()] && o.namespace() != "molecule-system" {
				t.Errorf("%s: %s has no namespace", filepath.Base(f), o.id())
			}
		}
	}
}

func TestMissingRequiredValuesAreNamed(t *testing.T) {
	_, stderr, err := template(t, "molecule-operator", "molecule-system")
	if err == nil {
		t.Fatal("helm template without values succeeded")
	}
	for value, name := range required {
		if !strings.Contains(stderr, value) || !strings.Contains(stderr, name) {
			t.Errorf("the error does not name %s (%s):\n%s", value, name, stderr)
		}
	}
	// With only the subnet missing, only the subnet is named.
	_, stderr, err = template(t, "molecule-operator", "molecule-system", "--set", "config.environment=dev",
		"--set", "aws.region=us-east-1", "--set", "aws.vpcId=vpc-0123")
	if err == nil || !strings.Contains(stderr, "aws.subnetId (EC2_SUBNET_ID)") || strings.Contains(stderr, "aws.region") {
		t.Errorf("only aws.subnetId missing: err=%v\n%s", err, stderr)
	}
}

func TestTemplateTimeRefusals(t *testing.T) {
	min := filepath.Join(chartDir, "ci", "minimal-values.yaml")
	cases := []struct {
		name string
		set  []string
		want string
	}{
		{"two replicas without leader election", []string{"replicas=2", "leaderElection=false"}, "needs leaderElection=true"},
		{"plain token in extraEnv", []string{"extraEnv[0].name=CLOUDFLARE_API_TOKEN", "extraEnv[0].value=abc"}, "pass it from a Secret with secretEnv"},
		{"extraEnv overriding a typed value", []string{"extraEnv[0].name=AWS_REGION", "extraEnv[0].value=x"}, "extraEnv sets AWS_REGION"},
		{"shard without operatorId", []string{"sharding.tenantSelector=shard=a"}, "operatorId must be set"},
		{"environment outside the enum", []string{"config.environment=qa"}, "environment"},
		{"misspelt extraEnv field", []string{"extraEnv[0].name=AWS_LAUNCH_RATE", "extraEnv[0].valeu=4"}, "valeu"},
		{"unknown GPU type in the catalog", []string{"catalogs.instanceTypes[0].name=g9.xlarge", "catalogs.instanceTypes[0].vcpus=4",
			"catalogs.instanceTypes[0].memoryMib=1024", "catalogs.instanceTypes[0].arch=x86_64", "catalogs.instanceTypes[0].hourlyUsd=0.5",
			"catalogs.instanceTypes[0].gpu.type=t4", "catalogs.instanceTypes[0].gpu.count=1"}, "/gpu/type"},
		{"metrics bound to loopback", []string{"metrics.bindAddress=127.0.0.1"}, "bindAddress"},
		{"boot deadline under the operator's minimum", []string{"config.bootDeadlineSeconds=5"}, "bootDeadlineSeconds"},
		{"IAM path without the closing slash", []string{"tenants.iamPath=/molecule"}, "iamPath"},
	}
	for _, c := range cases {
		args := []string{"-f", min}
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		_, stderr, err := template(t, "molecule-operator", "molecule-system", args...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: err=%v, want %q in:\n%s", c.name, err, c.want, stderr)
		}
	}
	// The same settings that are refused above render when correct.
	render(t, "molecule-operator", "molecule-system", "-f", min, "--set", "replicas=2",
		"--set", "secretEnv.CLOUDFLARE_API_TOKEN.name=cf", "--set", "secretEnv.CLOUDFLARE_API_TOKEN.key=token")
}

func TestThePodCanStartAndBeProbed(t *testing.T) {
	min := filepath.Join(chartDir, "ci", "minimal-values.yaml")
	objs := render(t, "molecule-operator", "molecule-system", "-f", min)
	pod := dig(one(t, objs, "Deployment"), "spec", "template", "spec")
	c := dig(pod, "containers", 0)
	// The image's user, as a number (runAsNonRoot cannot check a name); the root file system is
	// read-only and nothing is mounted writable: the binary writes no file.
	if dig(pod, "securityContext", "runAsUser") != 65532 || dig(pod, "securityContext", "runAsNonRoot") != true ||
		dig(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Errorf("security contexts: pod %v, container %v", dig(pod, "securityContext"), dig(c, "securityContext"))
	}
	// Every probe hits the port METRICS_ADDR opens, on the paths the operator serves.
	for probe, path := range map[string]string{"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if dig(c, probe, "httpGet", "path") != path || dig(c, probe, "httpGet", "port") != "metrics" {
			t.Errorf("%s: %v", probe, dig(c, probe))
		}
	}
	if dig(c, "ports", 0, "name") != "metrics" || dig(c, "ports", 0, "containerPort") != 8080 {
		t.Errorf("ports: %v", dig(c, "ports"))
	}
	// IPv6 clusters: the pod has no IPv4 address, so the operator must listen on [::].
	env := containerEnv(t, render(t, "molecule-operator", "molecule-system", "-f", min,
		"--set", "metrics.bindAddress=::", "--set", "metrics.port=9090"))
	if env["METRICS_ADDR"] != "[::]:9090" {
		t.Errorf("IPv6 METRICS_ADDR=%q", env["METRICS_ADDR"])
	}
}

func TestProductionValuesRenderEveryOptionalPart(t *testing.T) {
	objs := render(t, "molecule-operator", "molecule-system", "-f", filepath.Join(chartDir, "ci", "production-values.yaml"))
	env := containerEnv(t, objs)
	want := map[string]string{
		"CLOUDFLARE_API_TOKEN":            "secret:molecule-cloudflare/token",
		"GHCR_PULL_TOKEN":                 "secret:molecule-ghcr/token",
		"INSTALL_CRDS":                    "true",
		"INSTANCE_TYPE_CATALOG_FILE":      "/etc/molecule/catalogs/instance-types.yaml",
		"IMAGE_CATALOG_FILE":              "/etc/molecule/catalogs/images.yaml",
		"ORPHAN_POLICY":                   "reap",
		"ORPHAN_GRACE_SECONDS":            "7200",
		"AWS_LAUNCH_RATE":                 "4",
		"CANARY_ROLE_ARN":                 "arn:aws:iam::222222222222:role/molecule-canary-provisioner",
		"LEADER_ELECTION":                 "true",
		"TENANT_IAM_PATH":                 "/molecule/",
		"TENANT_IAM_PERMISSIONS_BOUNDARY": "arn:aws:iam::111111111111:policy/molecule-tenant-boundary",
		"BOOT_DEADLINE_SECONDS":           "1200",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s=%q, want %q", k, env[k], v)
		}
	}
	d := one(t, objs, "Deployment")
	if img := str(dig(d, "spec", "template", "spec", "containers", 0, "image")); !strings.HasPrefix(img, "ghcr.io/moleculesai/molecule-operator:0.1.0@sha256:") {
		t.Errorf("image %q", img)
	}
	for _, k := range []string{"ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy"} {
		one(t, objs, k)
	}
	checkPolicyBindings(t, objs)
	checkCatalogs(t, objs)
	checkCRDInstallRBAC(t, objs)
	checkAlerts(t, one(t, objs, "PrometheusRule"))
	checkDashboard(t, objs)
}

// The instance profile values of before issue 12 still install (old values files keep working)
// but set nothing: the operator gives each Tenant its own roles and profiles.
func TestRemovedInstanceProfileValuesSetNothing(t *testing.T) {
	min := filepath.Join(chartDir, "ci", "minimal-values.yaml")
	env := containerEnv(t, render(t, "molecule-operator", "molecule-system", "-f", min,
		"--set", "aws.tenantInstanceProfile=a", "--set", "aws.workspaceInstanceProfile=b",
		"--set", "aws.canary.tenantInstanceProfile=c", "--set", "config.erasureListingAllowanceSeconds=30"))
	for _, k := range []string{"EC2_TENANT_IAM_PROFILE", "EC2_WORKSPACE_IAM_PROFILE", "CANARY_TENANT_IAM_PROFILE"} {
		if v, ok := env[k]; ok {
			t.Errorf("env %s=%q: the operator no longer reads it", k, v)
		}
	}
	if env["ERASURE_LISTING_ALLOWANCE_SECONDS"] != "30" {
		t.Errorf("ERASURE_LISTING_ALLOWANCE_SECONDS=%q", env["ERASURE_LISTING_ALLOWANCE_SECONDS"])
	}
}

func checkCatalogs(t *testing.T, objs []obj) {
	t.Helper()
	for _, cm := range find(objs, "ConfigMap") {
		if !strings.HasSuffix(cm.name(), "-catalogs") {
			continue
		}
		types, err := parse(str(dig(cm, "data", "instance-types.yaml")))
		if err != nil || len(types) != 1 || len(dig(types[0], "instanceTypes").([]any)) != 3 {
			t.Errorf("instance-types.yaml: %v %v", err, types)
		}
		if p := dig(types[0], "instanceTypes", 0, "hourlyUsd"); p != "0.0832" {
			t.Errorf("hourlyUsd must stay a string: %#v", p)
		}
		images, err := parse(str(dig(cm, "data", "images.yaml")))
		if err != nil || len(images) != 1 || dig(images[0], "images", 0, "version") != "24.04" {
			t.Errorf("images.yaml: %v %v", err, images)
		}
		return
	}
	t.Error("no catalogs ConfigMap")
}

func checkCRDInstallRBAC(t *testing.T, objs []obj) {
	t.Helper()
	rules, _ := dig(one(t, objs, "ClusterRole"), "rules").([]any)
	var create, patch bool
	for _, r := range rules {
		if !strings.Contains(string(toJSON(t, dig(r, "resources"))), "customresourcedefinitions") {
			continue
		}
		verbs, names := string(toJSON(t, dig(r, "verbs"))), string(toJSON(t, dig(r, "resourceNames")))
		create = create || strings.Contains(verbs, "create")
		if strings.Contains(verbs, "patch") {
			patch = names == `["tenants.moleculesai.app","workspaces.moleculesai.app"]`
		}
		// The operator server-side-applies (PATCH) and reads; it never PUTs or deletes a CRD.
		if strings.Contains(verbs, "update") || strings.Contains(verbs, "delete") || strings.Contains(verbs, "*") {
			t.Errorf("crds.install grants more than create/patch on CRDs: %s", toJSON(t, r))
		}
	}
	if !create || !patch {
		t.Errorf("crds.install: create=%v, patch limited to our CRDs=%v; rules %s", create, patch, toJSON(t, rules))
	}
}

func checkAlerts(t *testing.T, rule obj) {
	t.Helper()
	text := string(toJSON(t, dig(rule, "spec")))
	for _, needle := range []string{
		// Waiting is a normal requeue (a delete or an erasure polling AWS), not an error.
		`molecule_reconciles_total{job=\"molecule-operator-metrics\",outcome!~\"ok|Waiting\"}`,
		`molecule_aws_calls_total{job=\"molecule-operator-metrics\",outcome=\"throttled\"}`,
		`reason=~\"DeletionBlocked|ErasureBlocked\"`, "molecule_orphans{", "molecule_fleet_cache_age_seconds{",
		"> 300", "absent(molecule_leader{", "sum(molecule_leader{",
	} {
		if !strings.Contains(text, needle) {
			t.Errorf("PrometheusRule lacks %s", needle)
		}
	}
	if n := len(dig(rule, "spec", "groups", 0, "rules").([]any)); n != 6 {
		t.Errorf("%d alerts, want 6", n)
	}
}

func checkDashboard(t *testing.T, objs []obj) {
	t.Helper()
	for _, cm := range find(objs, "ConfigMap") {
		if dig(cm, "metadata", "labels", "grafana_dashboard") != "1" {
			continue
		}
		var dash struct {
			Panels []struct {
				Targets []struct{ Expr string } `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal([]byte(str(dig(cm, "data", "molecule.json"))), &dash); err != nil || len(dash.Panels) < 10 {
			t.Fatalf("dashboard JSON: %v (%d panels)", err, len(dash.Panels))
		}
		all := string(toJSON(t, dash))
		for _, m := range []string{"molecule_build_info", "molecule_objects", "molecule_time_to_ready_seconds_bucket",
			"molecule_fleet_cache_age_seconds", "molecule_reconcile_duration_seconds_bucket", "molecule_aws_calls_total"} {
			if !strings.Contains(all, m) {
				t.Errorf("dashboard has no panel on %s", m)
			}
		}
		return
	}
	t.Error("no ConfigMap labelled grafana_dashboard=1")
}
