{{/*
dagfleet.component: the Deployment of one Airflow component. The main container starts through
the image's entrypoint (`dagfleet run -- <component>`: sync the DAGs once, then exec Airflow); an
init container waits for the database migrations; with `watch` a native sidecar
(`dagfleet watch`) keeps the DAG folder in step with the config API.
Takes (dict
  "root" $                       the root context
  "component" "scheduler"        component name (resource suffix, label, container name)
  "values" .Values.scheduler     replicas, resources, probes, scheduling
  "args" (list "scheduler")      arguments handed to the entrypoint
  "watch" true                   run the dag-sync sidecar
  "sync" true                    the main container syncs DAGs (`dagfleet run`); false: it starts
                                 through the official /entrypoint and gets no config API key
  "podTemplate" false            mounts the KubernetesExecutor pod template (checksum)
  "grace" 60                     terminationGracePeriodSeconds
  "ports" (dict "http" 8080)     containerPorts, name -> port (TCP)
  "probes" (dict "handler" ...)  the probes' check (and timings): see dagfleet.probes
  "extraEnv" (list (dict ...))   component-specific env
  "extraVolumes" (list ...)      component-specific volumes
  "extraMounts" (list ...)       component-specific volumeMounts
  "shard" "0"                    optional: one shard's Deployment (name suffix `-<shard>`, label and
                                 selector `dagfleet.io/shard`; dagProcessor.shards)
  "name" "worker-tenant-a"       optional: the resource suffix (default: "component")
  "group" "tenant-a"             optional: a Celery worker group (label dagfleet/worker-group,
                                 in the selector too)
  "autoscaled" true              optional: whether an autoscaler owns `replicas` (default:
                                 dagfleet.autoscaled of the component)
)
All of it is data: the component renders it (toYaml), callers never pass YAML text.
*/}}
{{- define "dagfleet.component" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $labelArgs := dict "root" $root "component" .component "group" .group "shard" .shard }}
{{- $sync := .sync }}
{{- $autoscaled := ternary .autoscaled (include "dagfleet.autoscaled" $labelArgs) (hasKey . "autoscaled") }}
{{- $token := eq (include "dagfleet.automountToken" (dict "root" $root "component" .component "values" $v)) "true" }}
{{- $extra := dict "root" $root "values" $v }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "dagfleet.fullname" $root }}-{{ .name | default .component }}{{ with .shard }}-{{ . }}{{ end }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "dagfleet.componentLabels" $labelArgs | nindent 4 }}
  annotations:
    {{- include "dagfleet.componentAnnotations" . }}
spec:
  {{- if not $autoscaled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "dagfleet.componentSelectorLabels" $labelArgs | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "dagfleet.componentLabels" $labelArgs | nindent 8 }}
      annotations:
        {{- include "dagfleet.airflowChecksums" (dict "root" $root "sync" $sync "podTemplate" .podTemplate) | nindent 8 }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "dagfleet.componentServiceAccountName" (dict "root" $root "component" .component "values" $v) }}
      automountServiceAccountToken: {{ $token }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      terminationGracePeriodSeconds: {{ .grace }}
      {{ include "dagfleet.componentContainers" . }}
      {{ include "dagfleet.componentVolumes" . }}
      {{- with include "dagfleet.placement" (dict "root" $root "values" $v "component" .component "group" .group) }}
      {{- . | nindent 6 }}
      {{- end }}
{{- end }}

{{/*
dagfleet.syncSidecar: the dag-sync init container of a component with `watch`: a native
sidecar running `dagfleet watch`. Takes the root context.
*/}}
{{- define "dagfleet.syncSidecar" -}}
{{- $root := . -}}
# Native sidecar (restartPolicy: Always): starts first, runs for the pod's lifetime,
# re-syncs every dagfleet.syncInterval seconds. With dagfleet.metrics.enabled it serves
# /metrics, /healthz (liveness: the loop is not stuck) and /readyz (a first sync finished).
- name: dag-sync
  image: {{ include "dagfleet.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  restartPolicy: Always
  command: ["dumb-init", "--", "dagfleet", "watch"]
  env:
    {{- include "dagfleet.syncEnv" $root | nindent 4 }}
    {{- with include "dagfleet.syncMetricsEnv" $root }}
    {{- . | nindent 4 }}
    {{- end }}
  {{- with $root.Values.dagfleet.metrics }}
  {{- if .enabled }}
  {{- $port := include "dagfleet.syncMetricsPortName" $root }}
  ports:
    {{- include "dagfleet.containerPorts" (dict $port .port) | nindent 4 }}
  {{- include "dagfleet.probes" (dict
    "handler" (dict "httpGet" (dict "path" "/healthz" "port" $port))
    "readinessHandler" (dict "httpGet" (dict "path" "/readyz" "port" $port))
    "timings" (pick . "livenessProbe" "readinessProbe")) | nindent 2 }}
  {{- end }}
  {{- end }}
  resources:
    {{- toYaml $root.Values.dagfleet.watch.resources | nindent 4 }}
  securityContext:
    {{- include "dagfleet.containerSecurityContext" $root | nindent 4 }}
  volumeMounts:
    {{- include "dagfleet.syncVolumeMounts" $root | nindent 4 }}
{{- end }}

{{/*
dagfleet.waitForMigrations: the init container that waits for the migration Job
(`airflow db check-migrations`). Takes the root context.
*/}}
{{- define "dagfleet.waitForMigrations" -}}
{{- $root := . -}}
# Airflow refuses to start on an unmigrated database: wait for the migration Job.
- name: wait-for-migrations
  image: {{ include "dagfleet.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["airflow", "db", "check-migrations", "--migration-wait-timeout={{ $root.Values.migrations.waitTimeout }}"]
  env:
    {{- include "dagfleet.airflowEnv" $root | nindent 4 }}
    {{- include "dagfleet.airflowSecretEnv" $root | nindent 4 }}
  resources:
    {{- toYaml $root.Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- include "dagfleet.containerSecurityContext" $root | nindent 4 }}
  volumeMounts:
    {{- include "dagfleet.migrateMounts" $root | nindent 4 }}
{{- end }}

{{/*
dagfleet.componentContainer: the main container of dagfleet.component. Takes the same dict.
*/}}
{{- define "dagfleet.componentContainer" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $sync := .sync }}
{{- $extra := dict "root" $root "values" $v -}}
- name: {{ .component }}
  image: {{ include "dagfleet.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  {{- if $sync }}
  # No command: the image's entrypoint (dumb-init -- dagfleet run --) syncs, then execs Airflow.
  {{- else }}
  # Reads serialized DAGs from the database: no sync, no config API key. Straight to the
  # official entrypoint (database check, then Airflow).
  command: ["dumb-init", "--", "/entrypoint"]
  {{- end }}
  args:
    {{- toYaml .args | nindent 4 }}
  env:
    {{- if $sync }}
    {{- include "dagfleet.syncEnv" $root | nindent 4 }}
    {{- end }}
    {{- include "dagfleet.airflowEnv" $root | nindent 4 }}
    {{- include "dagfleet.airflowSecretEnv" $root | nindent 4 }}
    {{- with .extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with include "dagfleet.extraList" (merge (dict "key" "extraEnvFrom") $extra) }}
  envFrom:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with .ports }}
  ports:
    {{- include "dagfleet.containerPorts" . | nindent 4 }}
  {{- end }}
  {{- include "dagfleet.probes" (merge (dict "values" $v) .probes) | nindent 2 }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- include "dagfleet.containerSecurityContext" $root | nindent 4 }}
  {{ include "dagfleet.componentVolumeMounts" . }}
{{- end }}

{{/*
dagfleet.containerPorts: a container's ports, all TCP. Takes a dict of name -> port, e.g.
(dict "http" 8080); listed by name.
*/}}
{{- define "dagfleet.containerPorts" -}}
{{- $ports := list }}
{{- range $name, $port := . }}
{{- $ports = append $ports (dict "name" $name "containerPort" (int $port) "protocol" "TCP") }}
{{- end }}
{{- toYaml $ports }}
{{- end }}

{{/*
dagfleet.probes: a container's probes, each the same check with its own timings from values.
Takes (dict
  "values" .Values.scheduler     timings: its startupProbe, livenessProbe and readinessProbe
  "timings" (dict "livenessProbe" ...)   instead of "values": probe name -> timings
  "handler" (dict "httpGet" (dict "path" "/health" "port" "health"))   the check
  "jobType" "DagProcessorJob"    instead of "handler": `airflow jobs check --job-type <type> --local`
                                 (is this pod's job heartbeating?)
  "readinessHandler" (dict ...)  optional: another check for the readinessProbe
)
*/}}
{{- define "dagfleet.probes" -}}
{{- $handler := .handler | default (dict "exec" (dict "command" (list "airflow" "jobs" "check" "--job-type" .jobType "--local"))) }}
{{- $all := .timings }}
{{- if not $all }}
{{- $all = pick .values "startupProbe" "livenessProbe" "readinessProbe" }}
{{- end }}
{{- $probes := dict }}
{{- range $name, $timings := $all }}
{{- $check := ternary ($.readinessHandler | default $handler) $handler (eq $name "readinessProbe") }}
{{- $_ := set $probes $name (merge (dict) $check $timings) }}
{{- end }}
{{- toYaml $probes }}
{{- end }}

{{- /*
dagfleet.componentVolumes: the volumes of a component's pod. Part of dagfleet.component; takes its dict.
*/}}
{{- define "dagfleet.componentVolumes" -}}
{{- $root := .root -}}
{{- $sync := .sync -}}
{{- $v := .values -}}
{{- $extra := dict "root" $root "values" $v -}}
      volumes:
        {{- if or $sync .watch }}
        {{- include "dagfleet.syncVolumes" $root | nindent 8 }}
        {{- else }}
        {{- include "dagfleet.baseVolumes" $root | nindent 8 }}
        {{- end }}
        {{- include "dagfleet.airflowSecretsVolume" $root | nindent 8 }}
        {{- include "dagfleet.airflowConfigVolume" $root | nindent 8 }}
        {{- with .extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with include "dagfleet.extraList" (merge (dict "key" "extraVolumes") $extra) }}
        {{- . | nindent 8 }}
        {{- end }}
{{- end }}

{{- /*
dagfleet.componentContainers: a component's init containers (extras, the dag-sync sidecar, the
wait for migrations) and containers (extras, the main one). Part of dagfleet.component; takes its dict.
*/}}
{{- define "dagfleet.componentContainers" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $extra := dict "root" $root "values" $v -}}
      initContainers:
        {{- with include "dagfleet.extraList" (merge (dict "key" "extraInitContainers") $extra) }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- if .watch }}
        {{- include "dagfleet.syncSidecar" $root | nindent 8 }}
        {{- end }}
        {{- include "dagfleet.waitForMigrations" $root | nindent 8 }}
      containers:
        {{- with include "dagfleet.extraList" (merge (dict "key" "extraContainers") $extra) }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- include "dagfleet.componentContainer" . | nindent 8 }}
{{- end }}

{{- /*
dagfleet.componentAnnotations: the scanner skips on a component's Deployment, each saying why.
Part of dagfleet.component; takes its dict.
*/}}
{{- define "dagfleet.componentAnnotations" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $extra := dict "root" $root "values" $v -}}
{{- $token := eq (include "dagfleet.automountToken" (dict "root" $root "component" .component "values" $v)) "true" -}}
    {{- with include "dagfleet.imageCheckovSkips" $root.Values.image }}{{ . | nindent 4 }}{{- end }}
    {{- with include "dagfleet.envFromSecretSkip" $extra }}{{ . | nindent 4 }}{{ end }}
    {{- if $token }}
    checkov.io/skip-sa-token: "CKV_K8S_38=Airflow launches task pods and reads their logs through the Kubernetes API (KubernetesPodOperator, KubernetesExecutor): it needs its ServiceAccount token"
    {{- end }}
    {{- with include "dagfleet.netpolCheckovSkip" $root }}{{ . | nindent 4 }}{{- end }}
{{- end }}

{{- /*
dagfleet.componentVolumeMounts: the main container's volumeMounts. Part of
dagfleet.componentContainer; takes the dict of dagfleet.component.
*/}}
{{- define "dagfleet.componentVolumeMounts" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $sync := .sync -}}
{{- $extra := dict "root" $root "values" $v -}}
  volumeMounts:
    {{- if $sync }}
    {{- include "dagfleet.syncVolumeMounts" $root | nindent 4 }}
    {{- else }}
    {{- include "dagfleet.baseVolumeMounts" $root | nindent 4 }}
    {{- end }}
    - name: airflow-secrets
      mountPath: {{ include "dagfleet.airflowSecretsDir" $root }}
      readOnly: true
    {{- include "dagfleet.airflowConfigMount" $root | nindent 4 }}
    {{- with .extraMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with include "dagfleet.extraList" (merge (dict "key" "extraVolumeMounts") $extra) }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end }}
