{{/* The release's base name, at most 63 characters (a DNS label). */}}
{{- define "palisade.fullname" -}}
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

{{- define "palisade.selectorLabels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "palisade.labels" -}}
{{ include "palisade.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "palisade.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "palisade.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "palisade.image" -}}
{{- $repository := required "image.repository is required: no Palisade image is published; build one from the Dockerfile and push it (docs/installation.md)" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Whether the chart installs a CRD of this API group (an argument list: root context, group).
An unknown group fails the render, so a CRD added to api/crds/ is never installed, or
dropped, without a decision here.
*/}}
{{- define "palisade.installsCrdGroup" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- $crds := $root.Values.crds -}}
{{- $format := $root.Values.reports.format -}}
{{- if eq $group "palisade.dev" -}}
{{- if $crds.install }}true{{ end -}}
{{- else if eq $group "wgpolicyk8s.io" -}}
{{- if and $crds.policyReports (eq $format "wgpolicyk8s") }}true{{ end -}}
{{- else if eq $group "openreports.io" -}}
{{- if and $crds.policyReports (eq $format "openreports") }}true{{ end -}}
{{- else -}}
{{- fail (printf "files/crds holds a CRD of group %s, which templates/_helpers.tpl (palisade.installsCrdGroup) does not know" $group) -}}
{{- end -}}
{{- end -}}

{{/*
The standard OpenTelemetry exporter variables (docs/observability.md). Nothing when no
endpoint is set: the agent's OTLP sink is off then.
*/}}
{{- define "palisade.otelEnv" -}}
{{- $otel := .Values.otel -}}
{{- if $otel.endpoint -}}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $otel.protocol | quote }}
{{- if $otel.headersSecret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ $otel.headersSecret.name }}
      key: {{ required "otel.headersSecret.key is required with otel.headersSecret.name" $otel.headersSecret.key }}
{{- else if $otel.headers }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  value: {{ $otel.headers | quote }}
{{- end }}
{{- with $otel.timeout }}
- name: OTEL_EXPORTER_OTLP_TIMEOUT
  value: {{ . | quote }}
{{- end }}
{{- with $otel.compression }}
- name: OTEL_EXPORTER_OTLP_COMPRESSION
  value: {{ . | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ $otel.serviceName | quote }}
{{- with $otel.resourceAttributes }}
{{- $pairs := list }}
{{- range $key, $value := . }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $pairs | quote }}
{{- end }}
{{- end -}}
{{- end -}}
