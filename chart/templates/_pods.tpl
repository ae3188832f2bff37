{{/* ---------- Production helpers (issue 17): identity, placement, extension points, logs, metrics, checksums ---------- */}}

{{/*
dagfleet.referenceConfigApiEnabled: "true" when the bundled reference config API runs: asked for
(referenceConfigApi.enabled), or no workflow source given at all (first contact: `helm install
dagfleet ./chart` serves the image's example workflows). Else empty. Takes the root context.
*/}}
{{- define "dagfleet.referenceConfigApiEnabled" -}}
{{- if or .Values.referenceConfigApi.enabled (not (or .Values.configApi.url .Values.staticWorkflows)) }}true{{ end }}
{{- end }}

{{/*
dagfleet.serviceAccounts: the ServiceAccounts of the chart as a JSON list of
{component, key, launcher, logReader, token} (launcher: bound to the pod-launching Role;
logReader: bound to the pod-log-reading Role; token: the default of
serviceAccount.automountServiceAccountToken when it is null). Takes the root context.
  api-server: with KubernetesExecutor it reads running task pods' logs through the Kubernetes
    API (KubernetesExecutor.get_task_log); otherwise no Kubernetes API calls.
  dag-processor: no Kubernetes API calls.
  scheduler: launches KubernetesExecutor task pods; with LocalExecutor its tasks launch KPO pods.
  triggerer: deferrable KubernetesPodOperator tasks watch their pods from there.
  worker (KubernetesExecutor only): task pods launch KPO pods.
*/}}
{{- define "dagfleet.serviceAccounts" -}}
{{- $v := .Values }}
{{- $ke := eq $v.executor "KubernetesExecutor" }}
{{- $list := list
  (dict "component" "api-server" "key" "apiServer" "launcher" false "logReader" $ke "token" $ke)
  (dict "component" "scheduler" "key" "scheduler" "launcher" true "logReader" false "token" true)
  (dict "component" "dag-processor" "key" "dagProcessor" "launcher" false "logReader" false "token" false)
  (dict "component" "triggerer" "key" "triggerer" "launcher" true "logReader" false "token" true) }}
{{- if or $ke (eq $v.executor "CeleryExecutor") }}
{{- $list = append $list (dict "component" "worker" "key" "workers" "launcher" true "logReader" false "token" true) }}
{{- end }}
{{- if and (eq $v.executor "CeleryExecutor") $v.flower.enabled }}
{{- $list = append $list (dict "component" "flower" "key" "flower" "launcher" false "logReader" false "token" false) }}
{{- end }}
{{- toJson $list }}
{{- end }}

{{/*
dagfleet.automountToken: "true" or "false": the component's
serviceAccount.automountServiceAccountToken, or, when that is null, the chart's default for it
(dagfleet.serviceAccounts). Takes (dict "root" $ "component" "api-server" "values" .Values.apiServer).
*/}}
{{- define "dagfleet.automountToken" -}}
{{- $set := .values.serviceAccount.automountServiceAccountToken }}
{{- if kindIs "invalid" $set }}
{{- $token := false }}
{{- range (include "dagfleet.serviceAccounts" .root | fromJsonArray) }}
{{- if eq .component $.component }}{{ $token = .token }}{{ end }}
{{- end }}
{{- $token }}
{{- else }}
{{- $set }}
{{- end }}
{{- end }}

{{/*
dagfleet.componentServiceAccountName: the ServiceAccount of one component: its
serviceAccount.name, else <fullname>-<component> when the chart creates it, else "default"
(only for components not bound to the pod-launching Role: dagfleet.validate refuses the others).
Takes (dict "root" $ "component" "scheduler" "values" .Values.scheduler).
*/}}
{{- define "dagfleet.componentServiceAccountName" -}}
{{- $sa := .values.serviceAccount }}
{{- if $sa.create }}
{{- default (printf "%s-%s" (include "dagfleet.fullname" .root) .component) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/*
dagfleet.placement: nodeSelector, affinity, tolerations, topologySpreadConstraints and
priorityClassName of a pod spec, each only when set. The pod's own setting, when not empty, wins;
else the chart-wide default of the same name (top-level values). A default spread constraint
without labelSelector gets the pod's component selector labels.
Takes (dict "root" $ "values" .Values.scheduler "component" "scheduler"), with "group" for a
Celery worker group.
*/}}
{{- define "dagfleet.placement" -}}
{{- $v := .values }}
{{- $g := .root.Values }}
{{- with $v.nodeSelector | default $g.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity | default $g.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations | default $g.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $spread := $v.topologySpreadConstraints | default list }}
{{- if not $spread }}
{{- $own := include "dagfleet.componentSelectorLabels" (dict "root" .root "component" .component "group" .group) | fromYaml }}
{{- range $g.topologySpreadConstraints }}
{{- $spread = append $spread (merge (dict) . (dict "labelSelector" (dict "matchLabels" $own))) }}
{{- end }}
{{- end }}
{{- with $spread }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
dagfleet.extraList: the global `airflow.<key>` list followed by the component's own `<key>`,
as YAML (empty when both are empty). Takes (dict "root" $ "values" .Values.scheduler "key" "extraVolumes").
*/}}
{{- define "dagfleet.extraList" -}}
{{- $items := concat (index .root.Values.airflow .key | default list) (index .values .key | default list) }}
{{- with $items }}{{ toYaml . }}{{ end }}
{{- end }}

{{/*
dagfleet.logsVolume: the task-log volume `logs`: the logs PersistentVolumeClaim with
logs.persistence.enabled, else an emptyDir. Takes the root context.
*/}}
{{- define "dagfleet.logsVolume" -}}
- name: logs
{{- if .Values.logs.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "dagfleet.logsClaimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}

{{/*
dagfleet.logsClaimName: logs.persistence.existingClaim, else <fullname>-logs. Takes the root context.
*/}}
{{- define "dagfleet.logsClaimName" -}}
{{- default (printf "%s-logs" (include "dagfleet.fullname" .)) .Values.logs.persistence.existingClaim }}
{{- end }}

{{/*
dagfleet.statsdHost: the statsd exporter Service. Takes the root context.
*/}}
{{- define "dagfleet.statsdHost" -}}
{{- printf "%s-statsd.%s.svc" (include "dagfleet.fullname" .) .Release.Namespace }}
{{- end }}

{{/*
dagfleet.chartAirflowSettings: the Airflow settings the chart sets through AIRFLOW__* env vars,
as a JSON map "section.key" -> {value, owned}. `owned` ones the chart must control (airflow.config
may not set them: dagfleet.validate fails); the others are defaults the user may override in
airflow.config, and the chart then leaves its env var out (dagfleet.airflowEnv).
Takes the root context.
*/}}
{{- define "dagfleet.chartAirflowSettings" -}}
{{- $s := dict }}
{{- $_ := set $s "core.executor" (dict "value" .Values.executor "owned" true) }}
{{- $_ := set $s "core.dags_folder" (dict "value" (include "dagfleet.dagsFolder" .) "owned" true) }}
{{- $_ := set $s "core.load_examples" (dict "value" "False" "owned" false) }}
{{- $_ := set $s "core.execution_api_server_url" (dict "value" (printf "%s/execution/" (include "dagfleet.apiServerUrl" .)) "owned" false) }}
{{- $_ := set $s "core.hostname_callable" (dict "value" "airflow.utils.net.get_host_ip_address" "owned" false) }}
{{- $_ := set $s "scheduler.enable_health_check" (dict "value" "True" "owned" true) }}
{{- if eq .Values.executor "KubernetesExecutor" }}
{{- $_ := set $s "kubernetes_executor.namespace" (dict "value" .Release.Namespace "owned" true) }}
{{- $_ := set $s "kubernetes_executor.pod_template_file" (dict "value" (include "dagfleet.podTemplateFile" .) "owned" true) }}
{{- $_ := set $s "kubernetes_executor.delete_worker_pods" (dict "value" (.Values.workers.deletePods | ternary "True" "False") "owned" false) }}
{{- end }}
{{- if .Values.metrics.enabled }}
{{- $_ := set $s "metrics.statsd_on" (dict "value" "True" "owned" true) }}
{{- $_ := set $s "metrics.statsd_host" (dict "value" (include "dagfleet.statsdHost" .) "owned" true) }}
{{- $_ := set $s "metrics.statsd_port" (dict "value" "9125" "owned" true) }}
{{- $_ := set $s "metrics.statsd_prefix" (dict "value" .Values.metrics.prefix "owned" true) }}
{{- end }}
{{- /* Read from Secrets through their _CMD variants (dagfleet.airflowSecretEnv). */}}
{{- $secrets := list "core.fernet_key" "database.sql_alchemy_conn" "api.secret_key" "api_auth.jwt_secret" }}
{{- if eq .Values.executor "CeleryExecutor" }}
{{- $secrets = concat $secrets (list "celery.broker_url" "celery.result_backend") }}
{{- end }}
{{- range $secrets }}
{{- $_ := set $s . (dict "value" "" "owned" true "secret" true) }}
{{- end }}
{{- toJson $s }}
{{- end }}

{{/*
dagfleet.userConfigKeys: the "section.key" names (lower case) set in airflow.config, as a JSON
list. Takes the root context.
*/}}
{{- define "dagfleet.userConfigKeys" -}}
{{- $keys := list }}
{{- range $section, $settings := .Values.airflow.config }}
{{- range $key, $_ := $settings }}
{{- $keys = append $keys (lower (printf "%s.%s" $section $key)) }}
{{- end }}
{{- end }}
{{- toJson $keys }}
{{- end }}

{{/*
dagfleet.chartEnv: one AIRFLOW__SECTION__KEY env var for a chart setting, left out when the user
set the same key in airflow.config (the user wins: the value comes from airflow.cfg).
Takes (dict "root" $ "name" "core.load_examples").
*/}}
{{- define "dagfleet.chartEnv" -}}
{{- $setting := index (include "dagfleet.chartAirflowSettings" .root | fromJson) .name }}
{{- if not (has .name (include "dagfleet.userConfigKeys" .root | fromJsonArray)) }}
{{- $parts := splitList "." .name }}
- name: {{ printf "AIRFLOW__%s__%s" (index $parts 0) (index $parts 1) | upper }}
  value: {{ $setting.value | toString | quote }}
{{- end }}
{{- end }}

{{/*
dagfleet.secretChecksum: a checksum that changes when the content of one Secret a pod reads
changes, and only then. Takes (dict "root" $ "name" "<secret name>" "existing" <bool> "inputs" <values>).
  - existing (bring your own): the Secret's resourceVersion, read with `lookup` during
    `helm upgrade`; `helm template` and GitOps renders cannot look up, so there it stays constant.
  - made by the chart: a hash of the values it is made from (never of generated random values,
    which are read back unchanged on upgrades and would differ on every `helm template`).
*/}}
{{- define "dagfleet.secretChecksum" -}}
{{- $state := dict "name" .name "inputs" .inputs }}
{{- if .existing }}
{{- $found := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- $_ := set $state "resourceVersion" (dig "metadata" "resourceVersion" "" ($found | default dict)) }}
{{- end }}
{{- toJson $state | sha256sum }}
{{- end }}

{{/*
dagfleet.configApiSecretChecksum / airflowSecretChecksum / databaseSecretChecksum: the
checksum of each Secret. Take the root context.
*/}}
{{- define "dagfleet.configApiSecretChecksum" -}}
{{- include "dagfleet.secretChecksum" (dict "root" . "name" (include "dagfleet.configApiSecretName" .) "existing" (not (empty .Values.configApi.existingSecret)) "inputs" (dict "apiKey" (.Values.configApi.apiKey | sha256sum) "key" (include "dagfleet.configApiSecretKey" .))) }}
{{- end }}
{{- define "dagfleet.airflowSecretChecksum" -}}
{{- include "dagfleet.secretChecksum" (dict "root" . "name" (include "dagfleet.airflowSecretName" .) "existing" (not (empty .Values.airflow.existingSecret)) "inputs" "generated once") }}
{{- end }}
{{- define "dagfleet.databaseSecretChecksum" -}}
{{- $existing := or (not .Values.postgresql.enabled) (not (empty .Values.postgresql.existingSecret)) }}
{{- $inputs := dict "key" (include "dagfleet.databaseSecretKey" .) }}
{{- if not $existing }}
{{- $_ := set $inputs "username" .Values.postgresql.username }}
{{- $_ := set $inputs "database" .Values.postgresql.database }}
{{- end }}
{{- include "dagfleet.secretChecksum" (dict "root" . "name" (include "dagfleet.databaseSecretName" .) "existing" $existing "inputs" $inputs) }}
{{- end }}

{{/*
dagfleet.airflowChecksums: the checksum/* pod annotations of an Airflow component: one per
ConfigMap or Secret it reads. Takes (dict "root" $ "sync" <mounts the config API key>
"podTemplate" <mounts the KubernetesExecutor pod template>).
*/}}
{{- define "dagfleet.airflowChecksums" -}}
{{- $root := .root -}}
checksum/airflow-config: {{ include (print $root.Template.BasePath "/airflow-config.yaml") $root | sha256sum }}
checksum/airflow-secret: {{ include "dagfleet.airflowSecretChecksum" $root }}
checksum/database-secret: {{ include "dagfleet.databaseSecretChecksum" $root }}
{{- if and .sync (include "dagfleet.hasApiKey" $root) }}
checksum/config-api-secret: {{ include "dagfleet.configApiSecretChecksum" $root }}
{{- end }}
{{- if include "dagfleet.celery" $root }}
checksum/broker-secret: {{ include "dagfleet.brokerSecretChecksum" $root }}
{{- end }}
{{- if .podTemplate }}
checksum/pod-template: {{ include (print $root.Template.BasePath "/pod-template.yaml") $root | sha256sum }}
{{- end }}
{{- end }}

{{/*
dagfleet.envFromSecretSkip: the checkov skip for secrets as environment variables, rendered only
when airflow.extraEnvFrom or the component's extraEnvFrom names a Secret (the user's choice, e.g.
AIRFLOW_CONN_* connections, which Airflow reads from the environment).
Takes (dict "root" $ "values" .Values.scheduler).
*/}}
{{- define "dagfleet.envFromSecretSkip" -}}
{{- $found := false }}
{{- range concat (.root.Values.airflow.extraEnvFrom | default list) (.values.extraEnvFrom | default list) }}
{{- if .secretRef }}{{ $found = true }}{{ end }}
{{- end }}
{{- if $found -}}
checkov.io/skip-env-secret: "CKV_K8S_35=extraEnvFrom names a Secret on purpose: Airflow reads connections and variables (AIRFLOW_CONN_*, AIRFLOW_VAR_*) from the environment"
{{- end }}
{{- end }}
