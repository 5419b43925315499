#!/usr/bin/env bash
# Prints the operator's ServiceAccount and RBAC objects for namespace $1, with the rules taken from
# the chart's files/ (the same rules the Helm chart installs), and the chart's admission policies
# (Tenant deletion protection, from files/tenant-deletion-policy.yaml; the operator's Lease writes,
# from files/lease-policy.yaml).
#
# One difference from the chart, on purpose: every scenario starts its own operator with its own id
# (e2e-<id>), hence its own leader Lease e2e-<id>-leader, so the world's Role cannot name the
# leader Lease in resourceNames as the chart's does; the Lease policy admits ^(molecule-operator|
# e2e-[a-z0-9-]+)-leader$ in the operator namespace instead of the one name.
set -euo pipefail
ns=${1:?namespace}
files="$(cd "$(dirname "$0")/../../.." && pwd)/charts/molecule-operator/files"
indent() { sed -e '/^#/d' -e 's/^/  /' "$1"; }
policy=molecule-operator-tenant-deletion
leases=molecule-operator-leases
leader_re='^(molecule-operator|e2e-[a-z0-9-]+)-leader$'
lease_policy() {
  indent "$files/lease-policy.yaml" | sed -e "s/@OPERATOR_NAMESPACE@/$ns/g" \
    -e "s/@OPERATOR_SERVICE_ACCOUNT@/molecule-operator/g" -e "s/@LEADER_LEASE_RE@/${leader_re//|/\\|}/g"
}
cat <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: molecule-operator, namespace: $ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: molecule-operator}
rules:
$(indent "$files/clusterrole-rules.yaml")
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: molecule-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: molecule-operator}
subjects: [{kind: ServiceAccount, name: molecule-operator, namespace: $ns}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: molecule-operator, namespace: $ns}
rules:
$(indent "$files/role-rules.yaml")
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: molecule-operator, namespace: $ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: molecule-operator}
subjects: [{kind: ServiceAccount, name: molecule-operator, namespace: $ns}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: $policy}
spec:
$(indent "$files/tenant-deletion-policy.yaml")
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: $policy}
spec: {policyName: $policy, validationActions: [Deny]}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: $leases}
spec:
$(lease_policy)
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: $leases}
spec: {policyName: $leases, validationActions: [Deny]}
YAML
