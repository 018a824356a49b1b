{{/* The release's base name, at most 63 characters (a DNS label). */}}
{{- define "changelane.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "changelane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "changelane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "changelane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "changelane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "changelane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: changelane
{{- end -}}

{{- define "changelane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "changelane.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "changelane.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap the file flag provider reads, or "" when none. */}}
{{- define "changelane.flagsConfigMap" -}}
{{- if .Values.flags.file.configMap -}}
{{- .Values.flags.file.configMap -}}
{{- else if .Values.flags.file.definitions -}}
{{- printf "%s-flags" (include "changelane.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Shard Leases the lanes are spread over: replicaCount with sharding, else 1 (one
leader Lease). Changing it re-maps lanes to shards; see docs/leadership.md. */}}
{{- define "changelane.shards" -}}
{{- if and .Values.leaderElection.sharding (gt (int .Values.replicaCount) 1) -}}
{{- int .Values.replicaCount -}}
{{- else -}}
1
{{- end -}}
{{- end -}}
