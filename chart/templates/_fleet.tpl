{{/* ---------- Fleet scale (issue 32): autoscaling, PgBouncer, cleanup CronJobs ---------- */}}

{{/*
dagfleet.hpa: an autoscaling/v2 HorizontalPodAutoscaler on CPU for one component's Deployment.
Takes (dict "root" $ "component" "api-server" "values" .Values.apiServer.autoscaling), with "name"
(the Deployment's suffix) and "group" for a Celery worker group.
*/}}
{{- define "dagfleet.hpa" -}}
{{- $v := .values }}
{{- $name := printf "%s-%s" (include "dagfleet.fullname" .root) (.name | default .component) }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "dagfleet.componentLabels" (dict "root" .root "component" .component "group" .group) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ max 1 $v.minReplicas }}
  maxReplicas: {{ $v.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: {{ $v.scaleDownStabilizationSeconds }}
{{- end }}

{{/*
dagfleet.kedaQuery: the KEDA PostgreSQL trigger's query: the number of Celery workers needed for
the queued and running task instances, `concurrency` slots each; for a worker group only those of
its queues (names the schema limits to letters, digits and `_.:-`). Takes one entry of
dagfleet.workerGroups.
*/}}
{{- define "dagfleet.kedaQuery" -}}
SELECT ceil(COUNT(*)::decimal / {{ int .values.concurrency }}) FROM task_instance WHERE state IN ('queued', 'running')
{{- if .group }} AND queue IN ('{{ join "', '" .queues }}'){{ end }}
{{- end }}

{{/*
dagfleet.autoscaled: "true" when the component's Deployment is autoscaled (no `replicas` then),
else empty. Takes (dict "root" $ "component" "worker").
*/}}
{{- define "dagfleet.autoscaled" -}}
{{- $v := .root.Values }}
{{- if eq .component "worker" }}{{ if $v.workers.autoscaling.enabled }}true{{ end }}
{{- else if eq .component "api-server" }}{{ if $v.apiServer.autoscaling.enabled }}true{{ end }}
{{- else if eq .component "triggerer" }}{{ if $v.triggerer.autoscaling.enabled }}true{{ end }}
{{- end }}
{{- end }}

{{/*
dagfleet.kedaUsed: "true" when a Celery worker group (or the single worker) is autoscaled by KEDA,
else empty. Takes the root context.
*/}}
{{- define "dagfleet.kedaUsed" -}}
{{- $ctx := dict "root" . }}
{{- include "dagfleet.workerGroups" $ctx }}
{{- $used := false }}
{{- range $ctx.groups }}
{{- if and .values.autoscaling.enabled (eq .values.autoscaling.mode "keda") }}{{ $used = true }}{{ end }}
{{- end }}
{{- if and (include "dagfleet.celery" .) $used }}true{{ end }}
{{- end }}

{{/*
dagfleet.kedaOwnConnection: "true" when KEDA reads the bundled PostgreSQL's Secret (key
`keda-connection`, made by the chart): KEDA autoscaling without workers.autoscaling.connectionSecretName.
Takes the root context.
*/}}
{{- define "dagfleet.kedaOwnConnection" -}}
{{- if and (include "dagfleet.kedaUsed" .) (not .Values.workers.autoscaling.connectionSecretName) }}true{{ end }}
{{- end }}

{{/*
dagfleet.validateFleet: the fleet-scale values that combine badly (dagfleet.validate calls it).
Takes the root context.
*/}}
{{- define "dagfleet.validateFleet" -}}
{{- $v := .Values }}
{{- include "dagfleet.validateWorkerGroups" . }}
{{- $scaled := dict "workers.autoscaling" $v.workers.autoscaling "apiServer.autoscaling" $v.apiServer.autoscaling "triggerer.autoscaling" $v.triggerer.autoscaling }}
{{- $ctx := dict "root" . }}
{{- include "dagfleet.workerGroups" $ctx }}
{{- range $ctx.groups }}
{{- if .group }}{{ $_ := set $scaled (printf "workers.groups[%s].autoscaling" .group) .values.autoscaling }}{{ end }}
{{- end }}
{{- range $name, $a := $scaled }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "%s: minReplicas (%d) is above maxReplicas (%d): lower minReplicas or raise maxReplicas" $name (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- end }}
{{- if and $a.enabled $v.podDisruptionBudget.enabled (eq (toString $v.podDisruptionBudget.maxUnavailable) "0") }}
{{- fail (printf "%s is on while podDisruptionBudget.maxUnavailable is 0: an autoscaled component at its minimum could never be drained; set maxUnavailable to 1 or more" $name) }}
{{- end }}
{{- end }}
{{- if and (include "dagfleet.kedaOwnConnection" .) (or (not $v.postgresql.enabled) $v.postgresql.existingSecret) }}
{{- fail "workers.autoscaling.mode=keda needs workers.autoscaling.connectionSecretName with an external database or postgresql.existingSecret: a Secret whose key `connection` is a libpq URL (postgresql://user:pass@host:5432/db) KEDA can query" }}
{{- end }}
{{- if and $v.pgbouncer.enabled (not $v.pgbouncer.image.repository) }}
{{- fail "pgbouncer.enabled=true needs pgbouncer.image.repository: an image with `pgbouncer` on PATH (Debian's pgbouncer package, see docs/helm.md)" }}
{{- end }}
{{- if and $v.cleanup.enabled (ne $v.executor "KubernetesExecutor") }}
{{- fail "cleanup.enabled=true deletes KubernetesExecutor task pods: set executor=KubernetesExecutor, or disable cleanup" }}
{{- end }}
{{- end }}

{{/*
dagfleet.pgbouncerAddress: "<host>:<port>" of the PgBouncer Service. Takes the root context.
*/}}
{{- define "dagfleet.pgbouncerAddress" -}}
{{- printf "%s-pgbouncer.%s.svc:%d" (include "dagfleet.fullname" .) .Release.Namespace (int .Values.pgbouncer.port) }}
{{- end }}

{{/*
dagfleet.pgbouncerImage: the PgBouncer image reference ("<repository>@<digest>" or
"<repository>:<tag>"). Takes the root context.
*/}}
{{- define "dagfleet.pgbouncerImage" -}}
{{- with .Values.pgbouncer.image }}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (default "latest" .tag) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
dagfleet.jobServiceAccountName: the ServiceAccount of a CronJob of the chart: its
serviceAccount.name, else <fullname>-<component> when the chart creates it, else "default".
Takes (dict "root" $ "component" "cleanup" "values" .Values.cleanup).
*/}}
{{- define "dagfleet.jobServiceAccountName" -}}
{{- $sa := .values.serviceAccount }}
{{- if $sa.name }}{{ $sa.name }}
{{- else if $sa.create }}{{ include "dagfleet.fullname" .root }}-{{ .component }}
{{- else }}default
{{- end }}
{{- end }}

{{/*
dagfleet.jobServiceAccount: the ServiceAccount a CronJob of the chart runs as, when its
serviceAccount.create (its token mounted only where "token"). Takes the dagfleet.cronJob dict.
*/}}
{{- define "dagfleet.jobServiceAccount" -}}
{{- if .values.serviceAccount.create }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "dagfleet.jobServiceAccountName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "dagfleet.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
  {{- with .values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .token }}
{{- end }}
{{- end }}

{{/*
dagfleet.cronJob: a CronJob running one Airflow command in the dagfleet image, one run at a time.
Takes (dict
  "root" $                          the root context
  "component" "database-cleanup"    name suffix, label, container name
  "values" .Values.databaseCleanup  schedule, history limits, resources, placement, serviceAccount
  "command" (list "airflow" ...)    the container's command
  "database" true                   give it the metadata database (direct, never through PgBouncer)
                                    and start it through the official /entrypoint (waits for it)
  "token" false                     mount the ServiceAccount token (Kubernetes API access)
)
*/}}
{{- define "dagfleet.cronJob" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $labelArgs := dict "root" $root "component" .component }}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ include "dagfleet.fullname" $root }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "dagfleet.componentLabels" $labelArgs | nindent 4 }}
  annotations:
    {{- include "dagfleet.cronJobAnnotations" . }}
spec:
  schedule: {{ $v.schedule | quote }}
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: {{ $v.successfulJobsHistoryLimit }}
  failedJobsHistoryLimit: {{ $v.failedJobsHistoryLimit }}
  jobTemplate:
    spec:
      backoffLimit: 1
      template:
        metadata:
          labels:
            {{- include "dagfleet.componentLabels" $labelArgs | nindent 12 }}
          {{- with $v.podAnnotations }}
          annotations:
            {{- toYaml . | nindent 12 }}
          {{- end }}
        spec:
          restartPolicy: Never
          serviceAccountName: {{ include "dagfleet.jobServiceAccountName" . }}
          automountServiceAccountToken: {{ .token }}
          securityContext:
            {{- toYaml $root.Values.podSecurityContext | nindent 12 }}
          {{- with $root.Values.imagePullSecrets }}
          imagePullSecrets:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with include "dagfleet.placement" (dict "root" $root "values" $v "component" .component) }}
          {{- . | nindent 10 }}
          {{- end }}
          {{ include "dagfleet.cronJobContainers" . }}
          {{ include "dagfleet.cronJobVolumes" . }}
{{- end }}

{{/*
dagfleet.databaseCleanupCommand: the shell line of the database cleanup: `airflow db clean` of the
rows older than databaseCleanup.retentionDays (the cut-off computed when the job runs, in UTC).
Takes the root context.
*/}}
{{- define "dagfleet.databaseCleanupCommand" -}}
{{- $c := .Values.databaseCleanup -}}
{{- $args := list "--yes" -}}
{{- if $c.skipArchive }}{{ $args = append $args "--skip-archive" }}{{ end -}}
{{- with $c.tables }}{{ $args = append $args (printf "--tables %s" (join "," .)) }}{{ end -}}
{{- if $c.batchSize }}{{ $args = append $args (printf "--batch-size %d" (int $c.batchSize)) }}{{ end -}}
exec airflow db clean --clean-before-timestamp "$(date -u -d '-{{ int $c.retentionDays }} days' '+%Y-%m-%dT%H:%M:%S+00:00')" {{ join " " $args }}
{{- end }}

{{- /*
dagfleet.cronJobVolumes: the volumes of a dagfleet.cronJob pod. Takes its dict.
*/}}
{{- define "dagfleet.cronJobVolumes" -}}
{{- $root := .root -}}
          volumes:
            - name: logs
              emptyDir: {}
            - name: tmp
              emptyDir: {}
            {{- include "dagfleet.airflowConfigVolume" $root | nindent 12 }}
            {{- if .database }}
            {{- include "dagfleet.airflowSecretsVolume" $root | nindent 12 }}
            {{- end }}
{{- end }}

{{- /*
dagfleet.cronJobContainers: the one container of a dagfleet.cronJob pod. Takes its dict.
*/}}
{{- define "dagfleet.cronJobContainers" -}}
{{- $root := .root -}}
{{- $v := .values -}}
          containers:
            - name: {{ .component }}
              image: {{ include "dagfleet.image" $root }}
              imagePullPolicy: {{ $root.Values.image.pullPolicy }}
              command:
                {{- toYaml (ternary (concat (list "dumb-init" "--" "/entrypoint") .command) .command .database) | nindent 16 }}
              env:
                {{- include "dagfleet.airflowEnv" $root | nindent 16 }}
                {{- if .database }}
                {{- include "dagfleet.airflowSecretEnvDirect" $root | nindent 16 }}
                {{- end }}
              resources:
                {{- toYaml $v.resources | nindent 16 }}
              securityContext:
                {{- include "dagfleet.containerSecurityContext" $root | nindent 16 }}
              volumeMounts:
                - name: logs
                  mountPath: /opt/airflow/logs
                - name: tmp
                  mountPath: /tmp
                {{- include "dagfleet.airflowConfigMount" $root | nindent 16 }}
                {{- if .database }}
                - name: airflow-secrets
                  mountPath: {{ include "dagfleet.airflowSecretsDir" $root }}
                  readOnly: true
                {{- end }}
{{- end }}

{{- /*
dagfleet.cronJobAnnotations: the scanner skips on a dagfleet.cronJob, each saying why. Takes its dict.
*/}}
{{- define "dagfleet.cronJobAnnotations" -}}
{{- $root := .root -}}
    {{- with include "dagfleet.imageCheckovSkips" $root.Values.image }}{{ . | nindent 4 }}{{- end }}
    {{- with include "dagfleet.netpolCheckovSkip" $root }}{{ . | nindent 4 }}{{- end }}
    {{- if .token }}
    checkov.io/skip-sa-token: "CKV_K8S_38=The pod cleanup lists and deletes task pods through the Kubernetes API (a Role limited to that)"
    {{- end }}
    checkov.io/skip-probes-liveness: "CKV_K8S_8=A CronJob pod runs one command to completion: nothing to probe"
    checkov.io/skip-probes-readiness: "CKV_K8S_9=A CronJob pod serves nothing: nothing to probe"
{{- end }}
