{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "podium.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name: "podium" for a release called podium. */}}
{{- define "podium.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "podium.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: podium
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of one service; call with (dict "root" $ "service" "ingest"). */}}
{{- define "podium.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podium.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "podium.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "podium.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "podium.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The non-secret settings as a map of PODIUM_* names to strings: the typed sections first,
then `config` (which may override them). Rendered into the ConfigMap and into the migration
Job (a pre-install hook runs before the ConfigMap exists).
*/}}
{{- define "podium.configEnv" -}}
{{- $v := .Values -}}
{{- $env := dict
  "PODIUM_HOST" "0.0.0.0"
  "PODIUM_KAFKA_BOOTSTRAP_SERVERS" $v.kafka.bootstrapServers
  "PODIUM_KAFKA_SECURITY_PROTOCOL" $v.kafka.securityProtocol
  "PODIUM_KAFKA_ENABLE_IDEMPOTENCE" (ternary "true" "false" $v.kafka.enableIdempotence)
  "PODIUM_KAFKA_REPLICATION_FACTOR" (toString $v.kafka.replicationFactor)
  "PODIUM_KAFKA_PARTITIONS" (toString $v.kafka.partitions)
  "PODIUM_RANKER_FETCH_MAX_WAIT_MS" (toString $v.kafka.fetchMaxWaitMs)
  "PODIUM_CHANGE_FEED_FETCH_WAIT_MS" (toString $v.kafka.fetchMaxWaitMs)
  "PODIUM_TOPIC_SCORE_EVENTS" $v.kafka.topics.scoreEvents
  "PODIUM_TOPIC_CHANGES" $v.kafka.topics.changes
  "PODIUM_TOPIC_DEAD_LETTERS" $v.kafka.topics.deadLetters
  "PODIUM_DB_SCHEMA" $v.postgres.schema
  "PODIUM_DB_POOL_MIN" (toString $v.postgres.poolMin)
  "PODIUM_DB_POOL_MAX" (toString $v.postgres.poolMax)
  "PODIUM_DATABASE_MAX_REPLICA_LAG_S" (toString $v.postgres.readReplica.maxLagS)
  "PODIUM_DEDUP_HORIZON_DAYS" (toString $v.postgres.dedupHorizonDays)
  "PODIUM_REDIS_KEY_PREFIX" $v.redis.keyPrefix
  "PODIUM_REDIS_POOL_MAX" (toString $v.redis.poolMax)
  "PODIUM_REDIS_CLUSTER" (ternary "true" "false" $v.redis.cluster)
-}}
{{- range $name, $service := $v.services -}}
{{- $_ := set $env (printf "PODIUM_%s" (upper $service.portSetting)) (toString $service.port) -}}
{{- end -}}
{{- if $v.kafka.sasl.enabled -}}
{{- $_ := set $env "PODIUM_KAFKA_SASL_MECHANISM" $v.kafka.sasl.mechanism -}}
{{- $_ := set $env "PODIUM_KAFKA_SASL_USERNAME" $v.kafka.sasl.username -}}
{{- end -}}
{{- if $v.kafka.ssl.caSecret -}}
{{- $_ := set $env "PODIUM_KAFKA_SSL_CAFILE" "/etc/podium/kafka-ca/ca.crt" -}}
{{- end -}}
{{- if $v.tls.direct.enabled -}}
{{- $_ := set $env "PODIUM_TLS_CERTFILE" "/etc/podium/tls/tls.crt" -}}
{{- $_ := set $env "PODIUM_TLS_KEYFILE" "/etc/podium/tls/tls.key" -}}
{{- end -}}
{{- range $key, $value := $v.config -}}
{{- $_ := set $env (printf "PODIUM_%s" (upper $key)) (toString $value) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* Secret-backed env vars; call with (dict "root" $ "service" "query"). */}}
{{- define "podium.secretEnv" -}}
{{- $v := .root.Values -}}
{{- $secret := required "secrets.existingSecret is required (the chart never holds secrets)" $v.secrets.existingSecret -}}
- name: PODIUM_JWT_SECRETS
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $v.secrets.keys.jwtSecrets }}}}
- name: PODIUM_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $v.secrets.keys.databaseUrl }}}}
{{- if ne .service "migrate" }}
- name: PODIUM_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $v.secrets.keys.redisUrl }}}}
{{- end }}
{{- if and $v.postgres.readReplica.enabled (has .service (list "query" "notifier" "ranker")) }}
- name: PODIUM_DATABASE_READ_URL
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $v.secrets.keys.databaseReadUrl }}}}
{{- end }}
{{- if and $v.kafka.sasl.enabled (ne .service "migrate") }}
- name: PODIUM_KAFKA_SASL_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ $v.secrets.keys.kafkaSaslPassword }}}}
{{- end }}
{{- end -}}

{{/* Refuse values that cannot work, at render time. */}}
{{- define "podium.validate" -}}
{{- $partitions := int .Values.kafka.partitions -}}
{{- $ranker := .Values.services.ranker -}}
{{- if gt (int $ranker.replicas) $partitions -}}
{{- fail (printf "services.ranker.replicas (%d) must not exceed kafka.partitions (%d): extra rankers would sit idle" (int $ranker.replicas) $partitions) -}}
{{- end -}}
{{- if and $ranker.autoscaling.enabled (gt (int $ranker.autoscaling.maxReplicas) $partitions) -}}
{{- fail (printf "services.ranker.autoscaling.maxReplicas (%d) must not exceed kafka.partitions (%d)" (int $ranker.autoscaling.maxReplicas) $partitions) -}}
{{- end -}}
{{- if not (kindIs "bool" .Values.redis.cluster) -}}
{{- fail "redis.cluster must be true or false" -}}
{{- end -}}
{{- if and .Values.tls.direct.enabled (not .Values.tls.direct.secretName) -}}
{{- fail "tls.direct.secretName is required when tls.direct.enabled" -}}
{{- end -}}
{{- end -}}

{{/* Volumes every Podium pod mounts: a writable /tmp, the TLS and Kafka CA secrets. */}}
{{- define "podium.volumes" -}}
- name: tmp
  emptyDir: {sizeLimit: 64Mi}
{{- if .Values.tls.direct.enabled }}
- name: tls
  secret: {secretName: {{ .Values.tls.direct.secretName }}}
{{- end }}
{{- if .Values.kafka.ssl.caSecret }}
- name: kafka-ca
  secret: {secretName: {{ .Values.kafka.ssl.caSecret }}}
{{- end }}
{{- end -}}

{{- define "podium.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.direct.enabled }}
- name: tls
  mountPath: /etc/podium/tls
  readOnly: true
{{- end }}
{{- if .Values.kafka.ssl.caSecret }}
- name: kafka-ca
  mountPath: /etc/podium/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}
