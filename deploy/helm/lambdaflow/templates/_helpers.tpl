{{/* The release's base name: <release>-lambdaflow, or the release name if it already says lambdaflow. */}}
{{- define "lambdaflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "lambdaflow.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one deployment; call with (dict "root" $ "name" $name). */}}
{{- define "lambdaflow.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* The NATS URLs every pod gets as LAMBDAFLOW_BROKER_URL. */}}
{{- define "lambdaflow.brokerURL" -}}
{{- if .Values.broker.url -}}
{{- .Values.broker.url -}}
{{- else if .Values.nats.enabled -}}
{{- printf "nats://%s-nats:4222" .Release.Name -}}
{{- else -}}
{{- fail "broker.url is required when nats.enabled is false" -}}
{{- end -}}
{{- end -}}

{{/* A deployment's autoscaling settings: the chart-wide defaults overlaid with its own. */}}
{{- define "lambdaflow.autoscaling" -}}
{{- $a := merge (deepCopy (.spec.autoscaling | default dict)) (deepCopy .root.Values.autoscaling) -}}
{{- toYaml $a -}}
{{- end -}}
