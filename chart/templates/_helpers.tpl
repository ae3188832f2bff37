{{/*
dagfleet.name: the chart name (or nameOverride), for the app.kubernetes.io/name label.
Takes the root context.
*/}}
{{- define "dagfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
dagfleet.fullname: the prefix of every resource name: fullnameOverride, else <release>-<name>,
else <release> when the release name already contains the chart name. Cut to 40 characters so
"<fullname>-<component suffix>" stays a valid DNS label. Takes the root context.
*/}}
{{- define "dagfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
dagfleet.chart: "<chart>-<version>" for the helm.sh/chart label. Takes the root context.
*/}}
{{- define "dagfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
dagfleet.selectorLabels: the immutable labels a selector matches (name + instance).
Takes the root context.
*/}}
{{- define "dagfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dagfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
dagfleet.labels: the common labels of every object. Takes the root context.
*/}}
{{- define "dagfleet.labels" -}}
helm.sh/chart: {{ include "dagfleet.chart" . }}
{{ include "dagfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dagfleet
{{- end }}

{{/*
dagfleet.componentSelectorLabels: selector labels plus app.kubernetes.io/component (and
dagfleet.io/shard for one shard's dag-processor; dagfleet/worker-group for a Celery worker group).
Takes (dict "root" $ "component" "scheduler" ["shard" "0"] ["group" "<name>"]).
*/}}
{{- define "dagfleet.componentSelectorLabels" -}}
{{ include "dagfleet.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .shard }}
dagfleet.io/shard: {{ . | quote }}
{{- end }}
{{- with .group }}
dagfleet/worker-group: {{ . }}
{{- end }}
{{- end }}

{{/*
dagfleet.componentLabels: common labels plus app.kubernetes.io/component (and
dagfleet/worker-group). Takes the same dict as dagfleet.componentSelectorLabels.
*/}}
{{- define "dagfleet.componentLabels" -}}
{{ include "dagfleet.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .shard }}
dagfleet.io/shard: {{ . | quote }}
{{- end }}
{{- with .group }}
dagfleet/worker-group: {{ . }}
{{- end }}
{{- end }}

{{/*
dagfleet.podNamespace: where KubernetesPodOperator pods and workflow Secrets live.
Takes the root context.
*/}}
{{- define "dagfleet.podNamespace" -}}
{{- default .Release.Namespace .Values.podNamespace }}
{{- end }}

{{/*
dagfleet.image: "<repository>@<digest>" or "<repository>:<tag or appVersion>".
Takes the root context.
*/}}
{{- define "dagfleet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
dagfleet.postgresqlImage: the bundled PostgreSQL image reference. Takes the root context.
*/}}
{{- define "dagfleet.postgresqlImage" -}}
{{- with .Values.postgresql.image }}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}
{{- end }}

{{/* ---------- Secret names (bring your own, or the chart creates them) ---------- */}}

{{/*
dagfleet.configApiSecretName: the Secret holding the config API key: configApi.existingSecret,
else the one the chart creates from configApi.apiKey. Takes the root context.
*/}}
{{- define "dagfleet.configApiSecretName" -}}
{{- default (printf "%s-config-api" (include "dagfleet.fullname" .)) .Values.configApi.existingSecret }}
{{- end }}

{{/*
dagfleet.configApiSecretKey: the key of the API key inside that Secret. Takes the root context.
*/}}
{{- define "dagfleet.configApiSecretKey" -}}
{{- if .Values.configApi.existingSecret }}
{{- .Values.configApi.existingSecretKey }}
{{- else -}}
api-key
{{- end }}
{{- end }}

{{/*
dagfleet.hasApiKey: "true" when an API key is configured (as a value or an existing Secret),
else empty. Takes the root context.
*/}}
{{- define "dagfleet.hasApiKey" -}}
{{- if or .Values.configApi.existingSecret .Values.configApi.apiKey }}true{{ end }}
{{- end }}

{{/*
dagfleet.airflowSecretName: the Secret with fernet-key, jwt-secret and api-secret-key.
Takes the root context.
*/}}
{{- define "dagfleet.airflowSecretName" -}}
{{- default (printf "%s-airflow" (include "dagfleet.fullname" .)) .Values.airflow.existingSecret }}
{{- end }}

{{/*
dagfleet.databaseSecretName: the Secret with the SQLAlchemy URL of the metadata database.
Takes the root context.
*/}}
{{- define "dagfleet.databaseSecretName" -}}
{{- if .Values.postgresql.enabled }}
{{- default (printf "%s-postgresql" (include "dagfleet.fullname" .)) .Values.postgresql.existingSecret }}
{{- else }}
{{- .Values.externalDatabase.existingSecret }}
{{- end }}
{{- end }}

{{/*
dagfleet.databaseSecretKey: the key of the SQLAlchemy URL inside that Secret. Takes the root context.
*/}}
{{- define "dagfleet.databaseSecretKey" -}}
{{- if .Values.postgresql.enabled -}}
connection
{{- else }}
{{- .Values.externalDatabase.existingSecretKey }}
{{- end }}
{{- end }}

{{/*
dagfleet.generatedSecret: the value of one key of a Secret the chart generates once: the value
already in the cluster (lookup) when there is one, else `fresh`. `helm template` and
--dry-run=client cannot look up, so they show a fresh value.
Takes (dict "root" $ "name" "<secret name>" "key" "<key>" "fresh" "<new value>").
*/}}
{{- define "dagfleet.generatedSecret" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- .fresh }}
{{- end }}
{{- end }}

{{/* ---------- URLs ---------- */}}

{{/*
dagfleet.apiServerUrl: in-cluster base URL of the api-server Service. Takes the root context.
*/}}
{{- define "dagfleet.apiServerUrl" -}}
{{- printf "http://%s-api-server.%s.svc:%d" (include "dagfleet.fullname" .) .Release.Namespace (int .Values.apiServer.service.port) }}
{{- end }}

{{/*
dagfleet.configApiUrl: the config API the components read: the bundled reference server when
enabled, else configApi.url (may be empty: static workflows only). Takes the root context.
*/}}
{{- define "dagfleet.configApiUrl" -}}
{{- if include "dagfleet.referenceConfigApiEnabled" . }}
{{- printf "http://%s-config-api.%s.svc:%d" (include "dagfleet.fullname" .) .Release.Namespace (int .Values.referenceConfigApi.port) }}
{{- else }}
{{- .Values.configApi.url | trimSuffix "/" }}
{{- end }}
{{- end }}

{{/* ---------- Paths inside the containers ---------- */}}
{{- define "dagfleet.dagsFolder" -}}/opt/airflow/dags{{- end }}
{{- define "dagfleet.apiKeyFile" -}}/var/run/secrets/dagfleet/api-key{{- end }}
{{- define "dagfleet.airflowSecretsDir" -}}/var/run/secrets/airflow{{- end }}
{{- define "dagfleet.airflowConfigFile" -}}/opt/airflow/config/airflow.cfg{{- end }}
{{- define "dagfleet.podTemplateFile" -}}/opt/airflow/pod_templates/pod_template_file.yaml{{- end }}

{{/* ---------- Environment ---------- */}}

{{/*
dagfleet.syncEnv: the DAGFLEET_* variables (docs/reference.md) of every container that syncs
DAGs. Only names the entrypoint accepts: the contract test checks them with `dagfleet check`, and
tests/entrypoint/test_settings.py holds the names and the defaults of values.yaml to their
declarations in entrypoint/dagfleet/fleet/settings.py. Takes the root context.
*/}}
{{- define "dagfleet.syncEnv" -}}
- name: DAGFLEET_DAGS_FOLDER
  value: {{ include "dagfleet.dagsFolder" . | quote }}
{{- with include "dagfleet.configApiUrl" . }}
- name: DAGFLEET_API_URL
  value: {{ . | quote }}
{{- end }}
{{- if include "dagfleet.hasApiKey" . }}
- name: DAGFLEET_API_KEY_FILE
  value: {{ include "dagfleet.apiKeyFile" . | quote }}
{{- end }}
{{- with include "dagfleet.templatesFolder" . }}
- name: DAGFLEET_TEMPLATES
  value: {{ . | quote }}
{{- end }}
{{- with .Values.templates.default }}
- name: DAGFLEET_DEFAULT_TEMPLATE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.staticWorkflows }}
- name: DAGFLEET_STATIC_WORKFLOWS
  value: {{ join "," . | quote }}
{{- end }}
{{- with include "dagfleet.declaredEnv" . }}
{{ . }}
{{- end }}
{{- with .Values.dagfleet }}
- name: DAGFLEET_ALLOW_EMPTY
  value: {{ .allowEmpty | toString | quote }}
- name: DAGFLEET_SYNC_INTERVAL
  value: {{ .syncInterval | toString | quote }}
- name: DAGFLEET_CONNECT_TIMEOUT
  value: {{ .connectTimeout | toString | quote }}
- name: DAGFLEET_READ_TIMEOUT
  value: {{ .readTimeout | toString | quote }}
- name: DAGFLEET_RETRIES
  value: {{ .retries | toString | quote }}
{{- if .cacheUrl }}
- name: DAGFLEET_CACHE_URL
  value: {{ .cacheUrl | quote }}
{{- end }}
- name: DAGFLEET_CACHE_TTL
  value: {{ .cacheTtl | toString | quote }}
- name: DAGFLEET_PARSE_TIMEOUT
  value: {{ .parseTimeout | toString | quote }}
- name: DAGFLEET_LOG_LEVEL
  value: {{ .logLevel | quote }}
{{- end }}
{{- end }}

{{/*
dagfleet.declaredEnv: what the deployment declares, for sync to check workflows against:
DAGFLEET_EXECUTORS (the chart's executor: a workflow's `executor` must be it), the pools
(dagfleet.poolsEnv), the number of shards (dagfleet.shardsEnv) and, with the CeleryExecutor,
DAGFLEET_QUEUES (the queues its worker groups serve: a workflow's `queue` must be one). Takes the
root context.
*/}}
{{- define "dagfleet.declaredEnv" -}}
- name: DAGFLEET_EXECUTORS
  value: {{ .Values.executor | quote }}
{{- include "dagfleet.poolsEnv" . }}
{{- include "dagfleet.shardsEnv" . }}
{{- with include "dagfleet.workerQueues" . }}
- name: DAGFLEET_QUEUES
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
dagfleet.poolsEnv: DAGFLEET_POOLS, the pools of .Values.pools as `airflow pools import` JSON (sync
checks workflows' `pool` against it; the migration Job imports it). Empty without pools. Takes the
root context.
*/}}
{{- define "dagfleet.poolsEnv" -}}
{{- with .Values.pools }}
- name: DAGFLEET_POOLS
  value: {{ toJson . | quote }}
{{- end }}
{{- end }}

{{/*
dagfleet.syncMetricsPortName: the name of the watch sidecar's metrics/health port (probes,
PodMonitor and NetworkPolicy refer to it). Takes the root context.
*/}}
{{- define "dagfleet.syncMetricsPortName" -}}
sync-metrics
{{- end }}

{{/*
dagfleet.fleetStatusUrl: where the api-server's Fleet page reads the fleet status
(DAGFLEET_STATUS_URL): the dag-processor's watch sidecar's /status.json, through the
<fullname>-fleet-status Service. Empty when the sidecar or its metrics port is off (the page then
reads the api-server's own dags folder, which the chart does not sync). Takes the root context.
*/}}
{{- define "dagfleet.fleetStatusUrl" -}}
{{- if and .Values.dagfleet.watch.enabled .Values.dagfleet.metrics.enabled -}}
http://{{ include "dagfleet.fullname" . }}-fleet-status.{{ .Release.Namespace }}.svc:{{ .Values.dagfleet.metrics.port }}/status.json
{{- end -}}
{{- end }}

{{/*
dagfleet.syncMetricsEnv: DAGFLEET_METRICS_PORT (and DAGFLEET_STUCK_AFTER) of the watch sidecar
when dagfleet.metrics.enabled; nothing otherwise. Takes the root context.
*/}}
{{- define "dagfleet.syncMetricsEnv" -}}
{{- $metrics := .Values.dagfleet.metrics -}}
{{- if $metrics.enabled -}}
- name: DAGFLEET_METRICS_PORT
  value: {{ $metrics.port | toString | quote }}
{{- if $metrics.stuckAfter }}
- name: DAGFLEET_STUCK_AFTER
  value: {{ $metrics.stuckAfter | toString | quote }}
{{- end }}
{{- end -}}
{{- end }}

{{/*
dagfleet.airflowEnv: the non-secret Airflow settings shared by every Airflow container, task
pods included. Takes the root context.
*/}}
{{- define "dagfleet.airflowEnv" -}}
- name: AIRFLOW_HOME
  value: /opt/airflow
- name: AIRFLOW_CONFIG
  value: {{ include "dagfleet.airflowConfigFile" . | quote }}
{{- /*
The chart's Airflow settings (dagfleet.chartAirflowSettings). Tasks (LocalExecutor children,
KubernetesExecutor pods) talk to the api-server's execution API; pod IPs, not pod names, identify
hosts (the api-server fetches task logs from <ip>:8793). A setting also given in airflow.config
is left out here: the user's airflow.cfg value wins.
*/}}
{{- range list "core.executor" "core.load_examples" "core.dags_folder" "core.execution_api_server_url" "core.hostname_callable" "scheduler.enable_health_check" }}
{{- include "dagfleet.chartEnv" (dict "root" $ "name" .) }}
{{- end }}
# KubernetesPodOperator tasks without an explicit namespace launch their pods here.
- name: AIRFLOW_CONN_KUBERNETES_DEFAULT
  value: {{ dict "conn_type" "kubernetes" "extra" (dict "in_cluster" true "namespace" (include "dagfleet.podNamespace" .)) | toJson | quote }}
{{- if eq .Values.executor "KubernetesExecutor" }}
{{- range list "kubernetes_executor.namespace" "kubernetes_executor.pod_template_file" "kubernetes_executor.delete_worker_pods" }}
{{- include "dagfleet.chartEnv" (dict "root" $ "name" .) }}
{{- end }}
{{- end }}
{{- if .Values.metrics.enabled }}
{{- range list "metrics.statsd_on" "metrics.statsd_host" "metrics.statsd_port" "metrics.statsd_prefix" }}
{{- include "dagfleet.chartEnv" (dict "root" $ "name" .) }}
{{- end }}
{{- end }}
{{- with .Values.airflow.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
dagfleet.airflowSecretEnv: the secret Airflow settings, read from mounted files through
Airflow's `_CMD` variants so no secret sits in an environment variable. Needs the
airflow-secrets volume (dagfleet.airflowSecretsVolume). Takes the root context.
*/}}
{{- define "dagfleet.airflowSecretEnv" -}}
{{- include "dagfleet.airflowSecretEnvFor" (dict "root" . "pooled" .Values.pgbouncer.enabled) }}
{{- end }}

{{/*
dagfleet.airflowSecretEnvDirect: dagfleet.airflowSecretEnv straight to the database, never through
PgBouncer: the migration Job (Airflow's migrations hold a session-level advisory lock, which
transaction pooling cannot keep) and the database cleanup. Takes the root context.
*/}}
{{- define "dagfleet.airflowSecretEnvDirect" -}}
{{- include "dagfleet.airflowSecretEnvFor" (dict "root" . "pooled" false) }}
{{- end }}

{{/*
dagfleet.airflowSecretEnvFor: the body of both. With "pooled" (pgbouncer.enabled) the database URL
is read with its host and port replaced by PgBouncer's Service (and its query string, such as
sslmode, left to PgBouncer's own connection), and asyncpg gets the connect arguments transaction
pooling needs (dagfleet.service.pgbouncer.ASYNCPG_CONNECT_ARGS). Takes (dict "root" $ "pooled" true).
*/}}
{{- define "dagfleet.airflowSecretEnvFor" -}}
{{- $root := .root -}}
{{- $dir := include "dagfleet.airflowSecretsDir" $root -}}
{{- $file := printf "%s/sql-alchemy-conn" $dir -}}
{{- $read := printf "cat %s" $file -}}
{{- $rewrite := "" -}}
{{- if .pooled }}
{{- $rewrite = printf "-E -e 's#@[^@/]*/([^?]*).*#@%s/\\1#' " (include "dagfleet.pgbouncerAddress" $root) -}}
{{- $read = printf "sed %s%s" $rewrite $file -}}
{{- end -}}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD
  value: {{ $read | quote }}
{{- if .pooled }}
- name: AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC
  value: dagfleet.service.pgbouncer.ASYNCPG_CONNECT_ARGS
{{- end }}
- name: AIRFLOW__CORE__FERNET_KEY_CMD
  value: {{ printf "cat %s/fernet-key" $dir | quote }}
- name: AIRFLOW__API__SECRET_KEY_CMD
  value: {{ printf "cat %s/api-secret-key" $dir | quote }}
- name: AIRFLOW__API_AUTH__JWT_SECRET_CMD
  value: {{ printf "cat %s/jwt-secret" $dir | quote }}
{{- if include "dagfleet.celery" $root }}
- name: AIRFLOW__CELERY__BROKER_URL_CMD
  value: {{ printf "cat %s/broker-url" $dir | quote }}
# Celery task results go to the metadata database (`db+` + its SQLAlchemy URL).
- name: AIRFLOW__CELERY__RESULT_BACKEND_CMD
  value: {{ printf "sed %s-e 's|^|db+|' %s" $rewrite $file | quote }}
{{- end }}
{{- end }}

{{/*
dagfleet.airflowConfigVolume / dagfleet.airflowConfigMount: airflow.cfg (airflow.config values)
from the ConfigMap, as a directory so AIRFLOW_CONFIG points at a file that exists.
Takes the root context.
*/}}
{{- define "dagfleet.airflowConfigVolume" -}}
- name: airflow-config
  configMap:
    name: {{ include "dagfleet.fullname" . }}-airflow-config
{{- end }}
{{- define "dagfleet.airflowConfigMount" -}}
- name: airflow-config
  mountPath: {{ include "dagfleet.airflowConfigFile" . | dir }}
  readOnly: true
{{- end }}

{{/* ---------- Volumes ---------- */}}

{{/*
dagfleet.airflowSecretsVolume: one projected volume with the database URL and Airflow's keys.
Takes the root context.
*/}}
{{- define "dagfleet.airflowSecretsVolume" -}}
- name: airflow-secrets
  projected:
    defaultMode: 0440
    sources:
      - secret:
          name: {{ include "dagfleet.airflowSecretName" . }}
          items:
            - key: fernet-key
              path: fernet-key
            - key: jwt-secret
              path: jwt-secret
            - key: api-secret-key
              path: api-secret-key
      - secret:
          name: {{ include "dagfleet.databaseSecretName" . }}
          items:
            - key: {{ include "dagfleet.databaseSecretKey" . }}
              path: sql-alchemy-conn
      {{- if include "dagfleet.celery" . }}
      - secret:
          name: {{ include "dagfleet.brokerUrlSecretName" . }}
          items:
            - key: connection
              path: broker-url
      {{- end }}
{{- end }}

{{/*
dagfleet.templatesFolder: the templates folder sync reads (DAGFLEET_TEMPLATES): the mounted
ConfigMap when templates.configMap is set, else templates.path, else "" (the shipped templates).
Takes the root context.
*/}}
{{- define "dagfleet.templatesFolder" -}}
{{- if .Values.templates.configMap -}}
/opt/dagfleet/templates-configmap
{{- else -}}
{{- .Values.templates.path -}}
{{- end -}}
{{- end }}

{{/*
dagfleet.syncVolumes: the volumes of a pod that syncs DAGs: the DAG folder, logs, /tmp and the
config API key. Takes the root context.
*/}}
{{- define "dagfleet.syncVolumes" -}}
{{ include "dagfleet.baseVolumes" . }}
{{- if include "dagfleet.hasApiKey" . }}
- name: config-api-key
  secret:
    secretName: {{ include "dagfleet.configApiSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ include "dagfleet.configApiSecretKey" . }}
        path: api-key
{{- end }}
{{- with .Values.templates.configMap }}
- name: templates
  configMap:
    name: {{ . }}
{{- end }}
{{- end }}

{{/*
dagfleet.baseVolumes / dagfleet.baseVolumeMounts: the DAG folder, task logs (a PVC with
logs.persistence.enabled) and /tmp of every Airflow pod. Take the root context.
*/}}
{{- define "dagfleet.baseVolumes" -}}
- name: dags
  emptyDir: {}
{{ include "dagfleet.logsVolume" . }}
- name: tmp
  emptyDir: {}
{{- end }}
{{- define "dagfleet.baseVolumeMounts" -}}
- name: dags
  mountPath: {{ include "dagfleet.dagsFolder" . }}
- name: logs
  mountPath: /opt/airflow/logs
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
dagfleet.syncVolumeMounts: the mounts that go with dagfleet.syncVolumes. Takes the root context.
*/}}
{{- define "dagfleet.syncVolumeMounts" -}}
{{ include "dagfleet.baseVolumeMounts" . }}
{{- if include "dagfleet.hasApiKey" . }}
- name: config-api-key
  mountPath: {{ include "dagfleet.apiKeyFile" . | dir }}
  readOnly: true
{{- end }}
{{- if .Values.templates.configMap }}
- name: templates
  mountPath: {{ include "dagfleet.templatesFolder" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* ---------- Pod parts ---------- */}}

{{/*
dagfleet.containerSecurityContext: the container securityContext. Takes the root context.
*/}}
{{- define "dagfleet.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}

{{/*
dagfleet.imageCheckovSkips: checkov skips for image pinning, rendered only when they apply (no
digest; a pull policy other than Always). A skip value is "<check>=<reason>": no other "=". Takes (dict "digest" "<digest>" "pullPolicy" "<policy>").
*/}}
{{- define "dagfleet.imageCheckovSkips" -}}
{{- $skips := list }}
{{- if not .digest }}
{{- $skips = append $skips "checkov.io/skip-image-digest: \"CKV_K8S_43=Images are pinned by tag by default; set image.digest to pin by digest\"" }}
{{- end }}
{{- if ne .pullPolicy "Always" }}
{{- $skips = append $skips "checkov.io/skip-pull-policy: \"CKV_K8S_15=Release tags are immutable, IfNotPresent avoids a registry round trip per pod start; set the pullPolicy to Always to change it\"" }}
{{- end }}
{{- join "\n" $skips }}
{{- end }}

{{/*
dagfleet.netpolCheckovSkip: the checkov skip for "no NetworkPolicy" (CKV2_K8S_6) of a pod's
annotations while networkPolicy.enabled is off; empty otherwise. Takes the root context.
*/}}
{{- define "dagfleet.netpolCheckovSkip" -}}
{{- if not .Values.networkPolicy.enabled -}}
checkov.io/skip-netpol: "CKV2_K8S_6=NetworkPolicies are opt-in (networkPolicy.enabled); the ingress-networkpolicy scenario covers them"
{{- end }}
{{- end }}

{{/*
dagfleet.migrateMounts: the mounts of the containers that check or run the migrations (no DAGs):
logs, /tmp, the Airflow secrets and airflow.cfg. The migration Job adds airflow.extraVolumeMounts.
Takes the root context.
*/}}
{{- define "dagfleet.migrateMounts" -}}
- name: logs
  mountPath: /opt/airflow/logs
- name: tmp
  mountPath: /tmp
- name: airflow-secrets
  mountPath: {{ include "dagfleet.airflowSecretsDir" . }}
  readOnly: true
{{ include "dagfleet.airflowConfigMount" . }}
{{- end }}
