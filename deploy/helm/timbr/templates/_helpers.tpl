{{/* Names and labels. */}}
{{- define "timbr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "timbr.fullname" -}}
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

{{- define "timbr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels; call with (dict "root" $ "component" "gateway"). */}}
{{- define "timbr.labels" -}}
helm.sh/chart: {{ include "timbr.chart" .root }}
{{ include "timbr.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: timbr
{{- end }}

{{- define "timbr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "timbr.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "timbr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "timbr.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "timbr.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "timbr.secretName" -}}
{{- default (include "timbr.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "timbr.storageClaimName" -}}
{{- default (printf "%s-storage" (include "timbr.fullname" .)) .Values.storage.local.existingClaim }}
{{- end }}

{{/* In-cluster addresses (host:port). */}}
{{- define "timbr.billingAddr" -}}
{{- printf "%s-billing:%d" (include "timbr.fullname" .) (int .Values.billing.port) }}
{{- end }}

{{- define "timbr.jobsAddr" -}}
{{- printf "%s-jobs:%d" (include "timbr.fullname" .) (int .Values.jobs.port) }}
{{- end }}

{{- define "timbr.modelUrl" -}}
{{- if .Values.models.url }}
{{- .Values.models.url }}
{{- else if .Values.triton.enabled }}
{{- printf "%s-triton:%d" (include "timbr.fullname" .) (int .Values.triton.grpcPort) }}
{{- else if .Values.modelServer.enabled }}
{{- printf "%s-modelserver:%d" (include "timbr.fullname" .) (int .Values.modelServer.grpcPort) }}
{{- end }}
{{- end }}

{{- define "timbr.modelBackend" -}}
{{- if .Values.models.backend }}
{{- .Values.models.backend }}
{{- else if or .Values.models.url .Values.triton.enabled .Values.modelServer.enabled }}
{{- "remote" }}
{{- else }}
{{- "inprocess" }}
{{- end }}
{{- end }}

{{- define "timbr.publicUrl" -}}
{{- if .Values.publicUrl }}
{{- .Values.publicUrl | trimSuffix "/" }}
{{- else if and .Values.gateway.ingress.enabled .Values.gateway.ingress.hosts }}
{{- $host := (first .Values.gateway.ingress.hosts).host }}
{{- printf "%s://%s" (ternary "https" "http" (gt (len .Values.gateway.ingress.tls) 0)) $host }}
{{- else }}
{{- printf "http://%s-gateway.%s.svc:%d" (include "timbr.fullname" .) .Release.Namespace (int .Values.gateway.service.port) }}
{{- end }}
{{- end }}

{{/* Values checks that a JSON schema cannot express; called from the ConfigMap. */}}
{{- define "timbr.validate" -}}
{{- if and (eq .Values.storage.backend "gcs") (not .Values.gcs.bucket) }}
{{- fail "storage.backend=gcs needs gcs.bucket (TIMBR_GCS_BUCKET)" }}
{{- end }}
{{- if and (eq (include "timbr.modelBackend" .) "remote") (not (include "timbr.modelUrl" .)) }}
{{- fail "models.backend=remote needs models.url, triton.enabled or modelServer.enabled" }}
{{- end }}
{{- if and .Values.triton.enabled (eq .Values.triton.modelRepository.source "pvc") (not .Values.triton.modelRepository.pvc.claimName) }}
{{- fail "triton.modelRepository.source=pvc needs triton.modelRepository.pvc.claimName" }}
{{- end }}
{{- if and .Values.triton.enabled (eq .Values.triton.modelRepository.source "uri") (not .Values.triton.modelRepository.uri) }}
{{- fail "triton.modelRepository.source=uri needs triton.modelRepository.uri" }}
{{- end }}
{{- if and .Values.workers.enabled .Values.kafka.topics.create }}
{{- range $jobType, $w := .Values.workers.jobTypes }}
{{- if and $w.enabled $w.autoscaling.enabled (gt (int $w.autoscaling.maxReplicas) (int $.Values.kafka.topics.partitions)) }}
{{- fail (printf "workers.jobTypes.%s.autoscaling.maxReplicas (%d) exceeds kafka.topics.partitions (%d): the extra workers would idle" $jobType (int $w.autoscaling.maxReplicas) (int $.Values.kafka.topics.partitions)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.workers.enabled (not (include "timbr.enabledJobTypes" .)) }}
{{- fail "workers.enabled needs at least one enabled entry in workers.jobTypes" }}
{{- end }}
{{- end }}

{{- define "timbr.enabledJobTypes" -}}
{{- $types := list }}
{{- range $name, $w := .Values.workers.jobTypes }}
{{- if $w.enabled }}{{ $types = append $types $name }}{{ end }}
{{- end }}
{{- join "," $types }}
{{- end }}

{{/* Pod annotations: config checksums (roll pods on change) and Prometheus scraping. */}}
{{- define "timbr.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- if not .root.Values.secrets.existingSecret }}
checksum/secret: {{ include (print .root.Template.BasePath "/secret.yaml") .root | sha256sum }}
{{- end }}
{{- if and .root.Values.metrics.podAnnotations .metricsPort }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .metricsPort | quote }}
prometheus.io/path: {{ default "/metrics" .metricsPath | quote }}
{{- end }}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Environment of a Timbr container. Call with
(dict "root" $ "database" "billing-database-url" "extra" (list ...)).
*/}}
{{- define "timbr.env" -}}
{{- $root := .root -}}
{{- if not .noSigningSecret }}
- name: TIMBR_SIGNING_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "timbr.secretName" $root }}
      key: signing-secret
- name: TIMBR_SERVICE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "timbr.secretName" $root }}
      key: service-token
{{- end }}
{{- if .database }}
- name: TIMBR_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "timbr.secretName" $root }}
      key: {{ .database }}
{{- end }}
{{- if $root.Values.gcs.credentialsSecret }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: /var/run/secrets/timbr/gcs/{{ $root.Values.gcs.credentialsKey }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every Timbr pod may need: shared local storage, GCS key, scratch /tmp. */}}
{{- define "timbr.volumes" -}}
- name: tmp
  emptyDir:
    {{- with .scratchSize }}
    sizeLimit: {{ . }}
    {{- end }}
{{- if and .storage (eq .root.Values.storage.backend "local") }}
- name: storage
  persistentVolumeClaim:
    claimName: {{ include "timbr.storageClaimName" .root }}
{{- end }}
{{- if .root.Values.gcs.credentialsSecret }}
- name: gcs-credentials
  secret:
    secretName: {{ .root.Values.gcs.credentialsSecret }}
{{- end }}
{{- end }}

{{- define "timbr.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and .storage (eq .root.Values.storage.backend "local") }}
- name: storage
  mountPath: {{ .root.Values.storage.local.mountPath }}
{{- end }}
{{- if .root.Values.gcs.credentialsSecret }}
- name: gcs-credentials
  mountPath: /var/run/secrets/timbr/gcs
  readOnly: true
{{- end }}
{{- end }}

{{/* Probes of a component: liveness, readiness and startup when set. */}}
{{- define "timbr.probes" -}}
{{- with .livenessProbe }}
livenessProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .readinessProbe }}
readinessProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .startupProbe }}
startupProbe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Scheduling: component values win over the chart-wide ones. */}}
{{- define "timbr.scheduling" -}}
{{- with (default .root.Values.nodeSelector .values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .root.Values.tolerations .values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .root.Values.affinity .values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A Timbr Deployment (one image, one command per component). Call with a dict:
  root, component, name (resource suffix), values (component values), replicas, hpa (bool),
  ports (list of {name, containerPort}), metricsPort, metricsPath, database (secret key or ""),
  env (extra env list), storage (mount the storage volume), scratchSize, resources,
  noSigningSecret (true for processes that sign nothing: the model server),
  podLabels (extra pod labels of this component).
*/}}
{{- define "timbr.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "timbr.fullname" $root }}-{{ .name }}
  labels:
    {{- include "timbr.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  {{- if not .hpa }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "timbr.selectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "timbr.selectorLabels" (dict "root" $root "component" .component) | nindent 8 }}
        app.kubernetes.io/part-of: timbr
        {{- with .podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "timbr.podAnnotations" (dict "root" $root "metricsPort" .metricsPort "metricsPath" .metricsPath) | nindent 8 }}
    spec:
      serviceAccountName: {{ include "timbr.serviceAccountName" $root }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ default 30 $v.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "timbr.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- toYaml $v.command | nindent 12 }}
          ports:
            {{- toYaml .ports | nindent 12 }}
          envFrom:
            - configMapRef:
                name: {{ include "timbr.fullname" $root }}
          env:
            {{- include "timbr.env" (dict "root" $root "database" .database "noSigningSecret" .noSigningSecret "extra" (concat (default list .env) (default list $v.env))) | trim | nindent 12 }}
          {{- include "timbr.probes" $v | trim | nindent 10 }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "timbr.volumeMounts" (dict "root" $root "storage" .storage) | nindent 12 }}
      volumes:
        {{- include "timbr.volumes" (dict "root" $root "storage" .storage "scratchSize" .scratchSize) | nindent 8 }}
      {{- include "timbr.scheduling" (dict "root" $root "values" $v) | trim | nindent 6 }}
{{- end }}

{{/* PodDisruptionBudget for a component; call with (dict "root" $ "component" "gateway" "name" "gateway" "pdb" .Values.gateway.pdb). */}}
{{- define "timbr.pdb" -}}
{{- if .pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "timbr.fullname" .root }}-{{ .name }}
  labels:
    {{- include "timbr.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  minAvailable: {{ .pdb.minAvailable }}
  selector:
    matchLabels:
      {{- include "timbr.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
{{- end }}
{{- end }}

{{/* HorizontalPodAutoscaler on CPU; call with (dict "root" $ "component" c "name" n "autoscaling" a). */}}
{{- define "timbr.hpa" -}}
{{- if .autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "timbr.fullname" .root }}-{{ .name }}
  labels:
    {{- include "timbr.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "timbr.fullname" .root }}-{{ .name }}
  minReplicas: {{ .autoscaling.minReplicas }}
  maxReplicas: {{ .autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: {{ default 300 .autoscaling.scaleDownStabilizationSeconds }}
{{- end }}
{{- end }}
