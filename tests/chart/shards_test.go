package chart

import (
	"path/filepath"
	"strings"
	"testing"
)

// shard renders one shard of the production values in namespace ns.
func shard(t *testing.T, release, ns, id string, extra ...string) []obj {
	t.Helper()
	args := append([]string{"-f", filepath.Join(chartDir, "ci", "production-values.yaml"),
		"--set", "operatorId=" + id, "--set", "sharding.tenantSelector=moleculesai.app/shard=" + id,
		"--set", "sharding.workspaceSelector=moleculesai.app/shard=" + id}, extra...)
	return render(t, release, ns, args...)
}

func TestTwoReleasesRenderWithoutACollision(t *testing.T) {
	// Side by side in one namespace: no object of one release may share a name with the other's,
	// cluster-scoped or not.
	a := shard(t, "shard-a", "molecule-system", "shard-a")
	b := shard(t, "shard-b", "molecule-system", "shard-b")
	if dup := duplicates(a, b); len(dup) > 0 {
		t.Errorf("two releases collide on:\n  %s", strings.Join(dup, "\n  "))
	}
	var cluster []string
	for _, o := range a {
		if clusterScoped[o.kind()] {
			cluster = append(cluster, o.id())
		}
	}
	if len(cluster) != 6 {
		t.Errorf("expected ClusterRole, ClusterRoleBinding, two ValidatingAdmissionPolicies and their bindings, got %v", cluster)
	}
	// Each binding names a policy of its own release, the ClusterRoleBinding its own role and SA.
	for _, objs := range [][]obj{a, b} {
		checkPolicyBindings(t, objs)
		crb := one(t, objs, "ClusterRoleBinding")
		if dig(crb, "roleRef", "name") != one(t, objs, "ClusterRole").name() ||
			dig(crb, "subjects", 0, "name") != one(t, objs, "ServiceAccount").name() {
			t.Errorf("%s points elsewhere: %v", crb.name(), crb)
		}
		env := containerEnv(t, objs)
		if env["MOLECULE_OPERATOR_ID"] == "" || !strings.HasSuffix(env["TENANT_SELECTOR"], env["MOLECULE_OPERATOR_ID"]) {
			t.Errorf("shard settings: %v", env)
		}
	}
	// fullnameOverride and nameOverride keep names apart as well.
	c := shard(t, "x", "molecule-system", "shard-c", "--set", "fullnameOverride=molecule-c")
	d := shard(t, "x2", "molecule-system", "shard-d", "--set", "nameOverride=molecule-d")
	if dup := duplicates(a, c, d); len(dup) > 0 {
		t.Errorf("overridden names collide on:\n  %s", strings.Join(dup, "\n  "))
	}
	if one(t, c, "ClusterRole").name() != "molecule-c" || one(t, d, "ClusterRole").name() != "x2-molecule-d" {
		t.Errorf("override names: %s, %s", one(t, c, "ClusterRole").name(), one(t, d, "ClusterRole").name())
	}
}

func TestTheCollisionCheckCatchesACollision(t *testing.T) {
	// The same release name in two namespaces shares every cluster-scoped name: the check must see it.
	a := shard(t, "molecule-operator", "ns-a", "shard-a")
	b := shard(t, "molecule-operator", "ns-b", "shard-b")
	dup := duplicates(a, b)
	want := []string{
		"admissionregistration.k8s.io/ValidatingAdmissionPolicy /molecule-operator-tenant-deletion",
		"rbac.authorization.k8s.io/ClusterRole /molecule-operator",
	}
	for _, w := range want {
		found := false
		for _, d := range dup {
			found = found || d == w
		}
		if !found {
			t.Errorf("collision %q not detected; found %v", w, dup)
		}
	}
}
