{{- define "blobswarm.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{- define "blobswarm.secretName" -}}
{{ .Values.fleetSecret.existingSecret | default "blobswarm-fleet" }}
{{- end }}

{{- define "blobswarm.trackerURL" -}}
http://blobswarm-tracker.{{ .Release.Namespace }}.svc.cluster.local:{{ .Values.tracker.port }}
{{- end }}
