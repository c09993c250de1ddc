{{/* Names. Component objects append -controller / -proxy, so the base stays within 50 characters. */}}
{{- define "modelgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "modelgate.controller.fullname" -}}{{ include "modelgate.fullname" . }}-controller{{- end -}}
{{- define "modelgate.proxy.fullname" -}}{{ include "modelgate.fullname" . }}-proxy{{- end -}}

{{- define "modelgate.controller.serviceAccountName" -}}
{{- default (include "modelgate.controller.fullname" .) .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- define "modelgate.proxy.serviceAccountName" -}}
{{- default (include "modelgate.proxy.fullname" .) .Values.proxy.serviceAccount.name -}}
{{- end -}}

{{- define "modelgate.pushTokenSecret" -}}
{{- default (printf "%s-push-token" (include "modelgate.fullname" .)) .Values.controller.pushTokenSecret -}}
{{- end -}}
{{/* Push stream TLS: the Secret with the controllers' certificate, the CA the proxies trust, the name they verify. */}}
{{- define "modelgate.pushTlsSecret" -}}
{{- default (printf "%s-push-tls" (include "modelgate.fullname" .)) .Values.push.tls.secretName -}}
{{- end -}}
{{- define "modelgate.pushCaSecret" -}}
{{- default (include "modelgate.pushTlsSecret" .) .Values.push.tls.caSecretName -}}
{{- end -}}
{{- define "modelgate.pushServerName" -}}
{{- default (printf "%s.%s.svc" (include "modelgate.controller.fullname" .) .Release.Namespace) .Values.push.tls.serverName -}}
{{- end -}}
{{/* The proxies' controller address: every address of the headless Service, https with push TLS. */}}
{{- define "modelgate.controllerAddress" -}}
dns:{{ if .Values.push.tls.enabled }}https://{{ end }}{{ include "modelgate.controller.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ .Values.controller.pushPort }}
{{- end -}}

{{- define "modelgate.lease" -}}
{{- default (include "modelgate.controller.fullname" .) .Values.controller.leaderElection.lease -}}
{{- end -}}

{{/* Labels. */}}
{{- define "modelgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "modelgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component: (dict "root" $ "component" "controller"). */}}
{{- define "modelgate.componentLabels" -}}
{{ include "modelgate.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}
{{- define "modelgate.componentSelectorLabels" -}}
{{ include "modelgate.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "modelgate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/*
The admin listener's HOST:PORT flag value: (dict "root" $ "port" 9901). `[$(POD_IP)]` is expanded
by the kubelet from the POD_IP variable; the brackets make it parse for IPv4 and IPv6 alike.
*/}}
{{- define "modelgate.adminAddress" -}}
{{- if eq .root.Values.adminBindAddress "podIP" -}}
[$(POD_IP)]:{{ .port }}
{{- else if contains ":" .root.Values.adminBindAddress -}}
[{{ .root.Values.adminBindAddress }}]:{{ .port }}
{{- else -}}
{{ .root.Values.adminBindAddress }}:{{ .port }}
{{- end -}}
{{- end -}}

{{/* A preferred anti-affinity over nodes for one component, unless the user gave an affinity. */}}
{{- define "modelgate.affinity" -}}
{{- if .affinity -}}
{{ toYaml .affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "modelgate.componentSelectorLabels" . | nindent 12 }}
{{- end -}}
{{- end -}}

{{/* The GatewayConfig the proxies read (--config); admin comes from the --admin flag. */}}
{{- define "modelgate.proxy.gatewayConfig" -}}
apiVersion: modelgate.dev/v1alpha1
kind: GatewayConfig
listeners:
  - name: http
    address: 0.0.0.0
    port: {{ .Values.proxy.httpPort }}
{{- if .Values.proxy.https.enabled }}
  - name: https
    address: 0.0.0.0
    port: {{ .Values.proxy.https.port }}
    protocol: HTTPS
    tls:
      minVersion: {{ .Values.proxy.https.minVersion }}
      certificates:
{{- range .Values.proxy.https.certificates }}
        - hostnames: {{ toJson .hostnames }}
          certFile: /etc/modelgate/tls/{{ .secretName }}/tls.crt
          keyFile: /etc/modelgate/tls/{{ .secretName }}/tls.key
{{- else }} []
{{- end }}
{{- if .Values.proxy.https.clientCA.secretName }}
      clientCA:
        file: /etc/modelgate/client-ca/{{ .Values.proxy.https.clientCA.key }}
{{- end }}
{{- end }}
trustedProxies:
  cidrs: {{ toJson .Values.proxy.trustedProxies }}
cache:
  maxBytes: {{ .Values.proxy.cache.maxBytes | quote }}
tracing:
{{- with .Values.proxy.tracing.otlpEndpoint }}
  otlpEndpoint: {{ . | quote }}
{{- end }}
  sampleRatio: {{ .Values.proxy.tracing.sampleRatio }}
  serviceName: {{ .Values.proxy.tracing.serviceName | quote }}
stateDir: /var/lib/modelgate
{{- end -}}

{{/* The NetworkPolicy peer of the monitoring namespace. */}}
{{- define "modelgate.networkPolicy.monitoringPeer" -}}
- namespaceSelector:
    {{- toYaml .Values.networkPolicy.monitoring.namespaceSelector | nindent 4 }}
  {{- with .Values.networkPolicy.monitoring.podSelector }}
  podSelector:
    {{- toYaml . | nindent 4 }}
  {{- end -}}
{{- end -}}
