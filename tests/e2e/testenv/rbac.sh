#!/usr/bin/env bash
# Prints the operator's ServiceAccount and RBAC objects for namespace $1, with the rules taken from
# the chart's files/ (the same rules the Helm chart installs), and the chart's admission policies
# (Tenant deletion protection, from files/tenant-deletion-policy.yaml).
set -euo pipefail
ns=${1:?namespace}
files="$(cd "$(dirname "$0")/../../.." && pwd)/charts/molecule-operator/files"
indent() { sed -e '/^#/d' -e 's/^/  /' "$1"; }
policy=molecule-operator-tenant-deletion
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
YAML
