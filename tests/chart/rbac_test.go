package chart

import (
	"slices"
	"strings"
	"testing"
)

// checkPolicyBindings: the release renders its two admission policies (Tenant deletion, Leases),
// each with one binding that names it and denies.
func checkPolicyBindings(t *testing.T, objs []obj) {
	t.Helper()
	policies, bindings := find(objs, "ValidatingAdmissionPolicy"), find(objs, "ValidatingAdmissionPolicyBinding")
	if len(policies) != 2 || len(bindings) != 2 {
		t.Fatalf("expected 2 policies and 2 bindings, rendered %d and %d", len(policies), len(bindings))
	}
	for i, p := range policies {
		b := bindings[i]
		if dig(b, "spec", "policyName") != p.name() || str(dig(b, "spec", "validationActions", 0)) != "Deny" {
			t.Errorf("%s binds %v with %v", b.name(), dig(b, "spec", "policyName"), dig(b, "spec", "validationActions"))
		}
	}
}

// leasePolicy returns the rendered Lease policy of a release.
func leasePolicy(t *testing.T, objs []obj) obj {
	t.Helper()
	for _, p := range find(objs, "ValidatingAdmissionPolicy") {
		if strings.HasSuffix(p.name(), "-leases") {
			return p
		}
	}
	t.Fatal("no Lease admission policy rendered")
	return nil
}

// rulesFor returns the verbs granted on resource (group/resource) by rules, keyed by the
// resourceNames they are limited to ("" for none).
func rulesFor(rules []any, group, resource string) map[string][]string {
	out := map[string][]string{}
	for _, r := range rules {
		groups, _ := dig(r, "apiGroups").([]any)
		resources, _ := dig(r, "resources").([]any)
		if !slices.Contains(groups, any(group)) || !slices.Contains(resources, any(resource)) {
			continue
		}
		var names []string
		if list, ok := dig(r, "resourceNames").([]any); ok {
			for _, n := range list {
				names = append(names, str(n))
			}
		}
		verbs, _ := dig(r, "verbs").([]any)
		for _, v := range verbs {
			key := strings.Join(names, ",")
			out[key] = append(out[key], str(v))
		}
	}
	return out
}

func TestLeaseWritesAreLimitedToTheLeaderAndDisplayLeases(t *testing.T) {
	objs := shard(t, "shard-a", "molecule-system", "shard-a")
	cluster, _ := dig(one(t, objs, "ClusterRole"), "rules").([]any)
	role, _ := dig(one(t, objs, "Role"), "rules").([]any)
	// Cluster-wide: watch the display Leases, create and delete them; never patch or update one.
	got := rulesFor(cluster, "coordination.k8s.io", "leases")
	if !slices.Equal(got[""], []string{"list", "watch", "create", "delete"}) || len(got) != 1 {
		t.Errorf("ClusterRole Lease rules: %v", got)
	}
	// In its namespace: create (cannot be limited by name), get and update of its own leader only.
	got = rulesFor(role, "coordination.k8s.io", "leases")
	if !slices.Equal(got[""], []string{"create"}) || !slices.Equal(got["shard-a-leader"], []string{"get", "update"}) ||
		len(got) != 2 {
		t.Errorf("Role Lease rules: %v", got)
	}
	// No list or watch of the namespace's Secrets and ConfigMaps, and no cluster-wide ones at all.
	for _, res := range []string{"secrets", "configmaps"} {
		for _, v := range rulesFor(role, "", res)[""] {
			if v == "list" || v == "watch" || v == "*" {
				t.Errorf("Role grants %s on %s", v, res)
			}
		}
		if len(rulesFor(cluster, "", res)) != 0 {
			t.Errorf("ClusterRole grants %s", res)
		}
	}
	// The policy is the release's own: its ServiceAccount, namespace and leader Lease.
	p := leasePolicy(t, objs)
	text := string(toJSON(t, dig(p, "spec")))
	sa := one(t, objs, "ServiceAccount").name()
	for _, want := range []string{
		"system:serviceaccount:molecule-system:" + sa,
		`request.namespace == 'molecule-system'`,
		`matches(r'^shard-a-leader$')`,
		"moleculesai.app/display-lease",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Lease policy lacks %q: %s", want, text)
		}
	}
	if strings.Contains(text, "@") {
		t.Errorf("a placeholder was not replaced: %s", text)
	}
}

func TestTheLeasePolicyCanBeSwitchedOff(t *testing.T) {
	objs := shard(t, "shard-a", "molecule-system", "shard-a", "--set", "admission.leaseProtection.enabled=false")
	if n := len(find(objs, "ValidatingAdmissionPolicy")); n != 1 {
		t.Errorf("leaseProtection.enabled=false still renders %d policies", n)
	}
}

func TestWithoutLeaderElectionTheRoleGrantsNoLease(t *testing.T) {
	objs := shard(t, "shard-a", "molecule-system", "shard-a", "--set", "leaderElection=false", "--set", "replicas=1")
	role, _ := dig(one(t, objs, "Role"), "rules").([]any)
	if got := rulesFor(role, "coordination.k8s.io", "leases"); len(got) != 0 {
		t.Errorf("leaderElection=false, yet the Role grants %v on Leases", got)
	}
}
