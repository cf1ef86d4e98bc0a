{{/* Names, labels and the image, shared by every template. */}}

{{/* An object's name: the release's, then the component's (logship-agent, logship-sink-es). */}}
{{- define "logship.name" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* What selects a component's pods; never changes for a release (selectors are immutable). */}}
{{- define "logship.selectorLabels" -}}
app.kubernetes.io/name: logship
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "logship.labels" -}}
{{ include "logship.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: logship
{{- end -}}

{{- define "logship.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* A component's configuration: its value, or the file shipped with the chart. */}}
{{- define "logship.config" -}}
{{- .values.config | default (.root.Files.Get .file) -}}
{{- end -}}
