{{- define "blobswarm.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{- define "blobswarm.secretName" -}}
{{ .Values.fleetSecret.existingSecret | default "blobswarm-fleet" }}
{{- end }}

{{- define "blobswarm.trackerURL" -}}
http://blobswarm-tracker.{{ .Release.Namespace }}.svc.cluster.local:{{ .Values.tracker.port }}
{{- end }}

{{- define "blobswarm.redisURL" -}}
{{- if .Values.tracker.redis -}}
{{ .Values.tracker.redis }}
{{- else if .Values.redis.enabled -}}
redis://blobswarm-redis.{{ .Release.Namespace }}.svc.cluster.local:6379/0
{{- end -}}
{{- end }}
