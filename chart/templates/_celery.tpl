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
