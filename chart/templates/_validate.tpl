{{/*
dagfleet.validate: fails the render with a message a user can act on when values combine badly
(types, enums and unknown keys are already rejected by values.schema.json). Takes the root context.
*/}}
{{- define "dagfleet.validate" -}}
{{- $v := .Values }}
{{- if and $v.configApi.url $v.referenceConfigApi.enabled }}
{{- fail "configApi.url and referenceConfigApi.enabled are both set: pick the external config API (configApi.url) or the bundled reference one (referenceConfigApi.enabled=true)" }}
{{- end }}
{{- if not (or $v.configApi.url $v.referenceConfigApi.enabled $v.staticWorkflows) }}
{{- fail "no workflow source: set configApi.url (external config API), referenceConfigApi.enabled=true (bundled reference config API) or staticWorkflows (a fixed list of workflow IDs)" }}
{{- end }}
{{- if and $v.configApi.apiKey $v.configApi.existingSecret }}
{{- fail "configApi.apiKey and configApi.existingSecret are both set: keep the key in one place (prefer existingSecret)" }}
{{- end }}
{{- if and (or $v.configApi.apiKey $v.configApi.existingSecret) (not (or $v.configApi.url $v.referenceConfigApi.enabled)) }}
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
{{- range $section, $settings := $v.airflow.config }}
{{- range $key, $_ := $settings }}
{{- $lower := lower (printf "%s.%s" $section $key) }}
{{- if has $lower (list "core.fernet_key" "database.sql_alchemy_conn" "api.secret_key" "api_auth.jwt_secret" "core.executor" "core.dags_folder") }}
{{- fail (printf "airflow.config.%s.%s is managed by the chart (from its Secrets or values): remove it" $section $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
