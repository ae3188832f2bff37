{{/* ---------- CeleryExecutor (workers, broker, Flower). Key names follow the official chart. ---------- */}}

{{/*
dagfleet.celery: "true" when the executor is the CeleryExecutor, else empty. Takes the root context.
*/}}
{{- define "dagfleet.celery" -}}
{{- if eq .Values.executor "CeleryExecutor" }}true{{ end }}
{{- end }}

{{/*
dagfleet.brokerUrlSecretName: the Secret whose key `connection` is the Celery broker URL:
data.brokerUrlSecretName, else the one the chart makes (from data.brokerUrl or the bundled Redis).
Takes the root context.
*/}}
{{- define "dagfleet.brokerUrlSecretName" -}}
{{- default (printf "%s-broker-url" (include "dagfleet.fullname" .)) .Values.data.brokerUrlSecretName }}
{{- end }}

{{/*
dagfleet.redisPasswordSecretName: the Secret whose key `password` is the bundled Redis password:
redis.passwordSecretName, else the one the chart generates. Takes the root context.
*/}}
{{- define "dagfleet.redisPasswordSecretName" -}}
{{- default (printf "%s-redis-password" (include "dagfleet.fullname" .)) .Values.redis.passwordSecretName }}
{{- end }}

{{/*
dagfleet.redisImage: the bundled Redis image reference. Takes the root context.
*/}}
{{- define "dagfleet.redisImage" -}}
{{- with .Values.redis.image }}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}
{{- end }}

{{/*
dagfleet.brokerSecretChecksum / redisSecretChecksum: checksums of the broker URL and Redis
password Secrets (dagfleet.secretChecksum: the values they are made from, or an existing
Secret's resourceVersion). Take the root context.
*/}}
{{- define "dagfleet.brokerSecretChecksum" -}}
{{- $inputs := dict "brokerUrl" (.Values.data.brokerUrl | sha256sum) "redis" .Values.redis.enabled "redisPassword" (.Values.redis.password | sha256sum) "redisPasswordSecret" .Values.redis.passwordSecretName }}
{{- include "dagfleet.secretChecksum" (dict "root" . "name" (include "dagfleet.brokerUrlSecretName" .) "existing" (not (empty .Values.data.brokerUrlSecretName)) "inputs" $inputs) }}
{{- end }}
{{- define "dagfleet.redisSecretChecksum" -}}
{{- include "dagfleet.secretChecksum" (dict "root" . "name" (include "dagfleet.redisPasswordSecretName" .) "existing" (not (empty .Values.redis.passwordSecretName)) "inputs" (dict "password" (.Values.redis.password | sha256sum))) }}
{{- end }}

{{/*
dagfleet.defaultQueue: Airflow's default queue (`airflow.config.operators.default_queue`, else
"default"): where tasks without a `queue`, and the executor's callbacks, go. Takes the root context.
*/}}
{{- define "dagfleet.defaultQueue" -}}
{{- $operators := .Values.airflow.config.operators | default dict }}
{{- $operators.default_queue | default "default" }}
{{- end }}

{{/*
dagfleet.workerGroups: the Celery worker Deployments, set as .groups on the dict it is given: a
list of (dict "name" <resource suffix> "group" <group name or ""> "queues" <list> "values" <values>).
Without workers.groups: one, "worker", today's single worker on the default queue (no --queues).
With them: "worker-<name>" per group, its values workers.* with the group's keys over them (a map
key by key, one level deep; false and 0 override too). Takes (dict "root" $).
*/}}
{{- define "dagfleet.workerGroups" -}}
{{- $w := .root.Values.workers }}
{{- $base := omit $w "groups" }}
{{- $groups := list }}
{{- range $w.groups }}
{{- $values := deepCopy $base }}
{{- range $key, $value := omit . "name" "queues" }}
{{- $merged := $value }}
{{- if and (kindIs "map" $value) (kindIs "map" (index $base $key)) }}
{{- $merged = deepCopy (index $base $key) }}
{{- range $k, $v := $value }}{{ $_ := set $merged $k $v }}{{ end }}
{{- end }}
{{- $_ := set $values $key $merged }}
{{- end }}
{{- $groups = append $groups (dict "name" (printf "worker-%s" .name) "group" .name "queues" .queues "values" $values) }}
{{- else }}
{{- $groups = append $groups (dict "name" "worker" "group" "" "queues" (list (include "dagfleet.defaultQueue" .root)) "values" $base) }}
{{- end }}
{{- $_ := set . "groups" $groups }}
{{- end }}

{{/*
dagfleet.workerQueues: with the CeleryExecutor, the queues its workers serve, comma-separated
(DAGFLEET_QUEUES); else empty. Takes the root context.
*/}}
{{- define "dagfleet.workerQueues" -}}
{{- if include "dagfleet.celery" . }}
{{- $ctx := dict "root" . }}
{{- include "dagfleet.workerGroups" $ctx }}
{{- $queues := list }}
{{- range $ctx.groups }}{{ $queues = concat $queues .queues }}{{ end }}
{{- $queues | uniq | join "," }}
{{- end }}
{{- end }}

{{/*
dagfleet.validateWorkerGroups: worker groups that cannot work: a name used twice, or no group on
Airflow's default queue (tasks without `queue` and the executor's callbacks would never run).
Takes the root context.
*/}}
{{- define "dagfleet.validateWorkerGroups" -}}
{{- if include "dagfleet.celery" . }}
{{- with .Values.workers.groups }}
{{- $names := list }}
{{- $queues := list }}
{{- range . }}
{{- if has .name $names }}
{{- fail (printf "workers.groups: the name %q is used twice: give each worker group its own name" .name) }}
{{- end }}
{{- $names = append $names .name }}
{{- $queues = concat $queues .queues }}
{{- end }}
{{- $default := include "dagfleet.defaultQueue" $ }}
{{- if not (has $default $queues) }}
{{- fail (printf "workers.groups: no group serves Airflow's default queue %q, where tasks without a `queue` and deadline callbacks go: add it to one group's queues" $default) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
