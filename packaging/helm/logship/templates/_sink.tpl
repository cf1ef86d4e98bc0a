{{/*
A sink: its ServiceAccount, ConfigMap and Deployment. Called with root (the chart's context),
component (sink-es, sink-s3), binary, values (.Values.sinkEs or .sinkS3), file (its default
config) and env (its own variables, a list as in a container's env).
*/}}
{{- define "logship.sink" -}}
{{- $root := .root }}
{{- $sink := .values }}
{{- $name := include "logship.name" . }}
{{- $config := include "logship.config" . }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "logship.labels" . | nindent 4 }}
  {{- with $sink.serviceAccountAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "logship.labels" . | nindent 4 }}
data:
  {{ .binary }}.toml: |
    {{- $config | nindent 4 }}
---
# A consumer group: the replicas share the topic's partitions, and a replica that stops leaves
# its partitions to the others after committing what it wrote.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "logship.labels" . | nindent 4 }}
spec:
  replicas: {{ $sink.replicas }}
  selector:
    matchLabels:
      {{- include "logship.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "logship.labels" . | nindent 8 }}
        {{- with $sink.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # A changed config rolls the pods: the sink reads it only at start.
        checksum/config: {{ $config | sha256sum }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $sink.apiPort | quote }}
        prometheus.io/path: /metrics
        {{- with $sink.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $name }}
      automountServiceAccountToken: false
      {{- with $sink.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $sink.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.sinkPodSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .binary }}
          image: {{ include "logship.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [{{ .binary }}]
          args: [run, -c, /etc/logship/{{ .binary }}.toml, --log-format, json]
          env:
            - name: LOGSHIP_BROKERS
              value: {{ $root.Values.kafka.brokers | quote }}
            - name: LOGSHIP_API_PORT
              value: {{ $sink.apiPort | quote }}
            {{- toYaml .env | nindent 12 }}
            {{- with $sink.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: api
              containerPort: {{ $sink.apiPort }}
              protocol: TCP
          # Ready: Kafka answers and writes go through (/health is 503 while the destination
          # refuses them). Alive: the process answers at all; a restart would not make the
          # destination take writes, and each one costs a rebalance of the group.
          readinessProbe:
            httpGet:
              path: /health
              port: api
            initialDelaySeconds: 5
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          livenessProbe:
            httpGet:
              path: /health/live
              port: api
            initialDelaySeconds: 10
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 3
          resources:
            {{- toYaml $sink.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.sinkSecurityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/logship
              readOnly: true
      volumes:
        - name: config
          configMap:
            name: {{ $name }}
      {{- with $sink.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $sink.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $sink.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

