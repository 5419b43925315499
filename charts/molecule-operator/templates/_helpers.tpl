{{/* Chart name, overridable with nameOverride. */}}
{{- define "molecule-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: every object name, namespaced and cluster-scoped, derives from it, so two releases
(shards) never collide. fullnameOverride wins; a release name containing the chart name is used as is.
*/}}
{{- define "molecule-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "molecule-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "molecule-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "molecule-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "molecule-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: molecule-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "molecule-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "molecule-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "molecule-operator.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* METRICS_ADDR: metrics.bindAddress (an IPv6 one in brackets) and metrics.port. */}}
{{- define "molecule-operator.metricsAddr" -}}
{{- $a := .Values.metrics.bindAddress | default "0.0.0.0" }}
{{- if contains ":" $a }}{{ printf "[%s]:%d" $a (int .Values.metrics.port) }}{{ else }}{{ printf "%s:%d" $a (int .Values.metrics.port) }}{{ end }}
{{- end }}

{{/* The operator id (MOLECULE_OPERATOR_ID): the ownership tag on every cloud resource. */}}
{{- define "molecule-operator.operatorId" -}}
{{- .Values.operatorId | default "molecule-operator" }}
{{- end }}

{{/*
Checks made at template time, so that a wrong install fails in `helm install` instead of
crash-looping: every missing required value is named at once.
*/}}
{{- define "molecule-operator.validate" -}}
{{- $missing := list }}
{{- if not .Values.config.environment }}{{ $missing = append $missing "config.environment (MOLECULE_ENV: dev, staging or prod)" }}{{ end }}
{{- if not .Values.aws.region }}{{ $missing = append $missing "aws.region (AWS_REGION)" }}{{ end }}
{{- if not .Values.aws.vpcId }}{{ $missing = append $missing "aws.vpcId (EC2_VPC_ID)" }}{{ end }}
{{- if not .Values.aws.subnetId }}{{ $missing = append $missing "aws.subnetId (EC2_SUBNET_ID)" }}{{ end }}
{{- if $missing }}
{{- fail (printf "\n\nmolecule-operator: required values are missing:\n  - %s\nSet them with --set or a values file (docs/install.md, \"Values\")." (join "\n  - " $missing)) }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection) }}
{{- fail (printf "\n\nmolecule-operator: replicas=%d needs leaderElection=true (two active replicas would both act on the same objects and cloud resources)" (int .Values.replicas)) }}
{{- end }}
{{- if and (or .Values.sharding.workspaceSelector .Values.sharding.tenantSelector) (not .Values.operatorId) }}
{{- fail "\n\nmolecule-operator: sharding.workspaceSelector/tenantSelector is set, so operatorId must be set too (each shard needs its own MOLECULE_OPERATOR_ID)" }}
{{- end }}
{{- $owned := list "MOLECULE_OPERATOR_ID" "MOLECULE_ENV" "AWS_REGION" "EC2_VPC_ID" "EC2_SUBNET_ID" "OPERATOR_NAMESPACE" "METRICS_ADDR" "LEADER_ELECTION" "LOG_FORMAT" "INSTALL_CRDS" "INSTANCE_TYPE_CATALOG_FILE" "IMAGE_CATALOG_FILE" "WORKSPACE_SELECTOR" "TENANT_SELECTOR" }}
{{- range .Values.extraEnv }}
{{- if has .name $owned }}
{{- fail (printf "\n\nmolecule-operator: extraEnv sets %s, which the chart sets from a typed value (docs/install.md, \"Values\")" .name) }}
{{- end }}
{{- if and (hasKey . "value") (regexMatch "(?i)(TOKEN|SECRET|PASSWORD|ACCESS_KEY)" .name) }}
{{- fail (printf "\n\nmolecule-operator: extraEnv gives %s as a plain value; pass it from a Secret with secretEnv: {%s: {name: <secret>, key: <key>}}" .name .name) }}
{{- end }}
{{- end }}
{{- range $k, $v := .Values.secretEnv }}
{{- if has $k $owned }}
{{- fail (printf "\n\nmolecule-operator: secretEnv sets %s, which the chart sets from a typed value" $k) }}
{{- end }}
{{- end }}
{{- end }}
