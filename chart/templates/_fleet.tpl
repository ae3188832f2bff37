{{/* ---------- Fleet scale (issue 32): autoscaling, PgBouncer, cleanup CronJobs ---------- */}}

{{/*
dagfleet.hpa: an autoscaling/v2 HorizontalPodAutoscaler on CPU for one component's Deployment.
Takes (dict "root" $ "component" "api-server" "values" .Values.apiServer.autoscaling).
*/}}
{{- define "dagfleet.hpa" -}}
{{- $v := .values }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "dagfleet.fullname" .root }}-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "dagfleet.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "dagfleet.fullname" .root }}-{{ .component }}
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
the queued and running task instances, `workers.concurrency` slots each. Takes the root context.
*/}}
{{- define "dagfleet.kedaQuery" -}}
SELECT ceil(COUNT(*)::decimal / {{ int .Values.workers.concurrency }}) FROM task_instance WHERE state IN ('queued', 'running')
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
dagfleet.kedaOwnConnection: "true" when KEDA reads the bundled PostgreSQL's Secret (key
`keda-connection`, made by the chart): KEDA autoscaling without workers.autoscaling.connectionSecretName.
Takes the root context.
*/}}
{{- define "dagfleet.kedaOwnConnection" -}}
{{- $w := .Values.workers.autoscaling }}
{{- if and (include "dagfleet.celery" .) $w.enabled (eq $w.mode "keda") (not $w.connectionSecretName) }}true{{ end }}
{{- end }}

{{/*
dagfleet.validateFleet: the fleet-scale values that combine badly (dagfleet.validate calls it).
Takes the root context.
*/}}
{{- define "dagfleet.validateFleet" -}}
{{- $v := .Values }}
{{- range $name, $a := dict "workers.autoscaling" $v.workers.autoscaling "apiServer.autoscaling" $v.apiServer.autoscaling "triggerer.autoscaling" $v.triggerer.autoscaling }}
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
