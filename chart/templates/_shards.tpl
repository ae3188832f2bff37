{{/* ---------- Shards of the fleet (issue 31): dagProcessor.shards, docs/parsing.md "Shards" ---------- */}}

{{/*
dagfleet.bundleConfigList: airflow.cfg's [dag_processor] dag_bundle_config_list. With
dagProcessor.shards = 1 the airflow.config value as it is; with n > 1 its dagfleet bundle (classpath
dagfleet.service.bundle.FleetBundle) becomes the n bundles dagfleet-0 … (kwargs shard k, its other kwargs
kept), other bundles stay as they are (shard 0's dag-processor parses them). Every component reads
the same list, so a worker finds every shard's bundle. Takes the root context.
*/}}
{{- define "dagfleet.bundleConfigList" -}}
{{- $value := (.Values.airflow.config.dag_processor | default dict).dag_bundle_config_list }}
{{- $shards := int .Values.dagProcessor.shards }}
{{- if le $shards 1 }}
{{- $value }}
{{- else }}
{{- $out := list }}
{{- $found := 0 }}
{{- range $bundle := fromJsonArray (toString (default "[]" $value)) }}
{{- if and (kindIs "map" $bundle) (eq (toString $bundle.classpath) "dagfleet.service.bundle.FleetBundle") }}
{{- $found = add1 $found }}
{{- range $k := until $shards }}
{{- $kwargs := merge (dict "shard" $k) (deepCopy ($bundle.kwargs | default dict)) }}
{{- $out = append $out (dict "name" (printf "dagfleet-%d" $k) "classpath" $bundle.classpath "kwargs" $kwargs) }}
{{- end }}
{{- else }}
{{- $out = append $out $bundle }}
{{- end }}
{{- end }}
{{- if ne $found 1 }}
{{- fail "dagProcessor.shards > 1 splits the dagfleet bundle: airflow.config.dag_processor.dag_bundle_config_list must name exactly one bundle with classpath dagfleet.service.bundle.FleetBundle (the shipped value does)" }}
{{- end }}
{{- toJson $out }}
{{- end }}
{{- end }}

{{/*
dagfleet.shardBundleArgs: the `--bundle-name` arguments of shard k's dag-processor: its own
bundle, and for shard 0 every bundle that is not a dagfleet shard (your own DAG folders).
Takes (dict "root" $ "shard" 0).
*/}}
{{- define "dagfleet.shardBundleArgs" -}}
{{- $args := list "--bundle-name" (printf "dagfleet-%d" .shard) }}
{{- if eq .shard 0 }}
{{- range $bundle := fromJsonArray (include "dagfleet.bundleConfigList" .root) }}
{{- if ne (toString $bundle.classpath) "dagfleet.service.bundle.FleetBundle" }}
{{- $args = concat $args (list "--bundle-name" (toString $bundle.name)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $args }}
{{- end }}

{{/*
dagfleet.shardsEnv: DAGFLEET_SHARDS for every container that syncs, only with dagProcessor.shards > 1
(the sync publishes one version tree per shard). Takes the root context.
*/}}
{{- define "dagfleet.shardsEnv" -}}
{{- if gt (int .Values.dagProcessor.shards) 1 }}
- name: DAGFLEET_SHARDS
  value: {{ .Values.dagProcessor.shards | toString | quote }}
{{- end }}
{{- end }}
