{{/*
dagfleet.validate: fails the render with a message a user can act on when values combine badly
(types, enums and unknown keys are already rejected by values.schema.json). Takes the root context.
*/}}
{{- define "dagfleet.validate" -}}
{{- $v := .Values }}
{{- include "dagfleet.validateFleet" . }}
{{- if and $v.configApi.url $v.referenceConfigApi.enabled }}
{{- fail "configApi.url and referenceConfigApi.enabled are both set: pick the external config API (configApi.url) or the bundled reference one (referenceConfigApi.enabled=true)" }}
{{- end }}
{{- /* No workflow source at all: the bundled reference config API runs (dagfleet.referenceConfigApiEnabled). */}}
{{- if and $v.configApi.apiKey $v.configApi.existingSecret }}
{{- fail "configApi.apiKey and configApi.existingSecret are both set: keep the key in one place (prefer existingSecret)" }}
{{- end }}
{{- if and (or $v.configApi.apiKey $v.configApi.existingSecret) (not (or $v.configApi.url (include "dagfleet.referenceConfigApiEnabled" .))) }}
{{- fail "a config API key is set but no config API: set configApi.url or referenceConfigApi.enabled=true, or drop configApi.apiKey/existingSecret" }}
{{- end }}
{{- if and (not $v.postgresql.enabled) (not $v.externalDatabase.existingSecret) }}
{{- fail "postgresql.enabled=false needs externalDatabase.existingSecret: the name of a Secret holding the SQLAlchemy URL of your database" }}
{{- end }}
{{- if and $v.postgresql.enabled $v.externalDatabase.existingSecret }}
{{- fail "externalDatabase.existingSecret is set while the bundled PostgreSQL is enabled: set postgresql.enabled=false to use the external database" }}
{{- end }}
{{- if and $v.apiServer.ingress.enabled (not $v.apiServer.ingress.hosts) }}
{{- fail "apiServer.ingress.enabled=true needs at least one entry in apiServer.ingress.hosts" }}
{{- end }}
{{- include "dagfleet.validateMetricsAndBroker" . }}
{{- include "dagfleet.validateSecretsAndEnv" . }}
{{- include "dagfleet.validateAirflowConfig" . }}
{{- include "dagfleet.validateAccess" . }}
{{- end }}

{{- /*
dagfleet.validateAccess: ServiceAccounts that would bind a pod-launching or log-reading Role to
"default", and a logs claim that is not mounted. Part of dagfleet.validate; takes the root context.
*/}}
{{- define "dagfleet.validateAccess" -}}
{{- $v := .Values -}}
{{- /* With rbac.create, a launcher without its own ServiceAccount would bind the pod-launching Role to "default". */}}
{{- if $v.rbac.create }}
{{- range (include "dagfleet.serviceAccounts" . | fromJsonArray) }}
{{- $sa := (index $v .key).serviceAccount }}
{{- if and .launcher (not $sa.create) (not $sa.name) }}
{{- fail (printf "%s.serviceAccount.create=false needs %s.serviceAccount.name: the %s launches pods, and the chart will not bind its pod-launching Role to the namespace's \"default\" ServiceAccount (every pod using it could then create and delete pods)" .key .key .component) }}
{{- end }}
{{- if and .logReader (not $sa.create) (not $sa.name) }}
{{- fail (printf "%s.serviceAccount.create=false needs %s.serviceAccount.name: with KubernetesExecutor the %s reads task pod logs, and the chart will not bind its pod-log-reading Role to the namespace's \"default\" ServiceAccount" .key .key .component) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.logs.persistence.existingClaim (not $v.logs.persistence.enabled) }}
{{- fail "logs.persistence.existingClaim is set but logs.persistence.enabled=false: set logs.persistence.enabled=true to mount it" }}
{{- end }}
{{- end }}

{{- /*
dagfleet.validateAirflowConfig: airflow.config keys the chart owns are refused. Part of
dagfleet.validate; takes the root context.
*/}}
{{- define "dagfleet.validateAirflowConfig" -}}
{{- $v := .Values -}}
{{- /* Keys the chart must own are refused; for the others the user's value wins (dagfleet.chartEnv). */}}
{{- $chartSettings := include "dagfleet.chartAirflowSettings" . | fromJson }}
{{- range $section, $settings := $v.airflow.config }}
{{- range $key, $_ := $settings }}
{{- $lower := lower (printf "%s.%s" $section $key) }}
{{- $setting := index $chartSettings $lower }}
{{- if and $setting $setting.owned }}
{{- if $setting.secret }}
{{- fail (printf "airflow.config.%s.%s is managed by the chart (read from a Secret: airflow.existingSecret, postgresql.existingSecret or externalDatabase.existingSecret): remove it" $section $key) }}
{{- else }}
{{- fail (printf "airflow.config.%s.%s is managed by the chart (it sets %s from its values; see docs/helm.md, \"Airflow settings\"): remove it" $section $key ($setting.value | toString | quote)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- /*
dagfleet.validateSecretsAndEnv: workflow Secrets named twice or over an existing one, and
DAGFLEET_* variables in airflow.extraEnv. Part of dagfleet.validate; takes the root context.
*/}}
{{- define "dagfleet.validateSecretsAndEnv" -}}
{{- $v := .Values -}}
{{- $names := dict }}
{{- range $v.workflowSecrets }}
{{- if hasKey $names .name }}
{{- fail (printf "workflowSecrets: the name %q appears twice" .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- end }}
{{- range $v.existingWorkflowSecrets }}
{{- if hasKey $names . }}
{{- fail (printf "%q is in both workflowSecrets and existingWorkflowSecrets: the chart would overwrite an existing Secret" .) }}
{{- end }}
{{- end }}
{{- range $v.airflow.extraEnv }}
{{- if hasPrefix "DAGFLEET_" .name }}
{{- fail (printf "airflow.extraEnv: %s is a dagfleet setting; set it through the `dagfleet` values so the chart can check it against docs/reference.md" .name) }}
{{- end }}
{{- end }}
{{- end }}

{{- /*
dagfleet.validateMetricsAndBroker: metrics objects without the metrics they scrape, and the
Celery broker given twice or not at all. Part of dagfleet.validate; takes the root context.
*/}}
{{- define "dagfleet.validateMetricsAndBroker" -}}
{{- $v := .Values -}}
{{- with $v.dagfleet.metrics }}
{{- if and (or .podMonitor.enabled .prometheusRule.enabled) (not (and .enabled $v.dagfleet.watch.enabled)) }}
{{- fail "dagfleet.metrics.podMonitor/prometheusRule need the watch sidecar's metrics: set dagfleet.watch.enabled=true and dagfleet.metrics.enabled=true, or disable them" }}
{{- end }}
{{- end }}
{{- if eq $v.executor "CeleryExecutor" }}
{{- if and $v.data.brokerUrl $v.data.brokerUrlSecretName }}
{{- fail "data.brokerUrl and data.brokerUrlSecretName are both set: keep the broker URL in one place (prefer brokerUrlSecretName)" }}
{{- end }}
{{- if and $v.redis.enabled (or $v.data.brokerUrl $v.data.brokerUrlSecretName) }}
{{- fail "an external Celery broker (data.brokerUrl or data.brokerUrlSecretName) is set while the bundled Redis is enabled: set redis.enabled=false to use the external broker" }}
{{- end }}
{{- if not (or $v.redis.enabled $v.data.brokerUrl $v.data.brokerUrlSecretName) }}
{{- fail "executor=CeleryExecutor needs a broker: redis.enabled=true (bundled Redis), data.brokerUrl (external broker URL) or data.brokerUrlSecretName (an existing Secret with the key `connection`)" }}
{{- end }}
{{- end }}
{{- end }}
