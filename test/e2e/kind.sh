#!/usr/bin/env bash
# End-to-end test on a real cluster (kind): builds the image, installs the CRDs, runs two
# controller replicas and two proxies, two small model servers, and a ModelRoute splitting 90/10;
# checks that traffic through the proxies reaches both revisions in about that ratio, that a
# weight change moves the split, and that the route reports Programmed=True.
#
# Needs docker, kind and kubectl on PATH (and curl). Run from anywhere:
#
#   test/e2e/kind.sh                 # creates the cluster, tests, deletes the cluster
#   KEEP=1 test/e2e/kind.sh          # keeps the cluster afterwards, to look around
#   CLUSTER=my-test test/e2e/kind.sh # another cluster name (default modelgate-e2e)
#
# The manifests are inline (heredocs) for now; they move to a Helm chart and deploy/ later.
set -euo pipefail

CLUSTER="${CLUSTER:-modelgate-e2e}"
KEEP="${KEEP:-0}"
IMAGE="${IMAGE:-modelgate:e2e}"
NS=modelgate
DEMO_NS=modelgate-demo
LOCAL_PORT="${LOCAL_PORT:-18080}"
REQUESTS="${REQUESTS:-200}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d)"
PF_PID=""

log() { printf '\n==> %s\n' "$*" >&2; }
die() {
  printf '\nFAIL: %s\n' "$*" >&2
  exit 1
}

CTX="kind-${CLUSTER}"
k() { kubectl --context "$CTX" "$@"; }

cleanup() {
  local rc=$?
  if [[ -n "$PF_PID" ]]; then kill "$PF_PID" 2>/dev/null || true; fi
  if [[ $rc -ne 0 ]] && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "diagnostics (exit code $rc)"
    k get pods -A -o wide >&2 || true
    k -n "$NS" logs -l app.kubernetes.io/name=modelgate-controller --tail=50 --prefix >&2 || true
    k -n "$NS" logs -l app.kubernetes.io/name=modelgate-proxy --tail=50 --prefix >&2 || true
    k -n "$DEMO_NS" get modelroutes -o yaml >&2 || true
  fi
  if [[ "$KEEP" == "1" ]]; then
    log "KEEP=1: cluster '$CLUSTER' kept (kubectl --context $CTX ...; delete with: kind delete cluster --name $CLUSTER)"
  else
    log "deleting cluster '$CLUSTER'"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}

# --- cluster and image ---------------------------------------------------------------------------

check_tools() {
  local tool
  for tool in docker kind kubectl curl; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not on PATH; this script needs docker, kind, kubectl and curl"
  done
  docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer (is it running? may this user use it?)"
}

setup_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "cluster '$CLUSTER' exists; reusing it"
  else
    log "creating kind cluster '$CLUSTER'"
    kind create cluster --name "$CLUSTER" --wait 120s
  fi

  log "building $IMAGE from $ROOT/Dockerfile"
  docker build -t "$IMAGE" "$ROOT"
  log "loading $IMAGE into the cluster"
  kind load docker-image "$IMAGE" --name "$CLUSTER"

  log "installing the CRDs"
  k apply -f "$ROOT/crds/"
  k wait --for condition=Established --timeout=60s -f "$ROOT/crds/"
}

# --- manifests --------------------------------------------------------------------------------
# Each function prints one multi-document YAML stream; test/unit/e2e-manifests.test.ts parses them.

manifest_base() {
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: ${NS}
---
apiVersion: v1
kind: Namespace
metadata:
  name: ${DEMO_NS}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: modelgate-controller
  namespace: ${NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: modelgate-controller
rules:
  - apiGroups: [modelgate.dev]
    resources: [modelroutes, ratelimitpolicies, canaryrollouts]
    verbs: [get, list, watch]
  - apiGroups: [modelgate.dev]
    resources: [modelroutes/status, ratelimitpolicies/status, canaryrollouts/status]
    verbs: [get, update, patch]
  - apiGroups: [""]
    resources: [services, secrets]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: modelgate-controller
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: modelgate-controller
subjects:
  - kind: ServiceAccount
    name: modelgate-controller
    namespace: ${NS}
---
# In the controller's own namespace: its Lease, and the push-token Secret it creates if absent.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: modelgate-controller
  namespace: ${NS}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, list, watch, create, update, patch]
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: modelgate-controller
  namespace: ${NS}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: modelgate-controller
subjects:
  - kind: ServiceAccount
    name: modelgate-controller
    namespace: ${NS}
---
# The proxies talk to the controllers only (bearer token), never to the API server.
apiVersion: v1
kind: ServiceAccount
metadata:
  name: modelgate-proxy
  namespace: ${NS}
automountServiceAccountToken: false
EOF
}

manifest_controller() {
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: modelgate-controller
  namespace: ${NS}
  labels: { app.kubernetes.io/name: modelgate-controller, app.kubernetes.io/part-of: modelgate }
spec:
  replicas: 2
  selector:
    matchLabels: { app.kubernetes.io/name: modelgate-controller }
  template:
    metadata:
      labels: { app.kubernetes.io/name: modelgate-controller, app.kubernetes.io/part-of: modelgate }
    spec:
      serviceAccountName: modelgate-controller
      containers:
        - name: controller
          image: ${IMAGE}
          imagePullPolicy: IfNotPresent
          args: [controller]
          env:
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
            - name: POD_NAMESPACE
              valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
          ports:
            - { name: push, containerPort: 8443 }
            - { name: admin, containerPort: 9902 }
          readinessProbe:
            httpGet: { path: /readyz, port: admin }
            periodSeconds: 2
          livenessProbe:
            httpGet: { path: /healthz, port: admin }
            periodSeconds: 10
---
# Headless: proxies resolve every controller replica (dns:NAME:PORT) and connect to each.
apiVersion: v1
kind: Service
metadata:
  name: modelgate-controller
  namespace: ${NS}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: { app.kubernetes.io/name: modelgate-controller }
  ports:
    - { name: push, port: 8443, targetPort: push }
EOF
}

manifest_proxy() {
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: modelgate-proxy
  namespace: ${NS}
  labels: { app.kubernetes.io/name: modelgate-proxy, app.kubernetes.io/part-of: modelgate }
spec:
  replicas: 2
  selector:
    matchLabels: { app.kubernetes.io/name: modelgate-proxy }
  template:
    metadata:
      labels: { app.kubernetes.io/name: modelgate-proxy, app.kubernetes.io/part-of: modelgate }
    spec:
      serviceAccountName: modelgate-proxy
      containers:
        - name: proxy
          image: ${IMAGE}
          imagePullPolicy: IfNotPresent
          args:
            - proxy
            - --controller
            - dns:modelgate-controller.${NS}.svc.cluster.local:8443
            - --push-token-file
            - /var/run/modelgate/token/token
            - --state-dir
            - /var/lib/modelgate
            - --listen
            - 0.0.0.0:8080
            - --admin
            - 0.0.0.0:9901
          env:
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
          ports:
            - { name: http, containerPort: 8080 }
            - { name: admin, containerPort: 9901 }
          readinessProbe:
            httpGet: { path: /readyz, port: admin }
            periodSeconds: 2
          volumeMounts:
            - { name: push-token, mountPath: /var/run/modelgate/token, readOnly: true }
            - { name: state, mountPath: /var/lib/modelgate }
      volumes:
        - name: push-token
          secret: { secretName: modelgate-push-token }
        - name: state
          emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: modelgate-proxy
  namespace: ${NS}
spec:
  selector: { app.kubernetes.io/name: modelgate-proxy }
  ports:
    - { name: http, port: 80, targetPort: http }
EOF
}

# One model server: Deployment + Service. $1 = revision (v1, v2).
manifest_model_server() {
  local rev="$1"
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: model-${rev}
  namespace: ${DEMO_NS}
spec:
  replicas: 1
  selector:
    matchLabels: { app: model, revision: ${rev} }
  template:
    metadata:
      labels: { app: model, revision: ${rev} }
    spec:
      containers:
        - name: model
          image: ${IMAGE}
          imagePullPolicy: IfNotPresent
          command: [node, /app/dist/examples/model-server.js]
          args: [--host, 0.0.0.0, --port, "8000", --name, model-${rev}, --revision, ${rev}]
          ports:
            - { name: http, containerPort: 8000 }
          readinessProbe:
            httpGet: { path: /health, port: http }
            periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: model-${rev}
  namespace: ${DEMO_NS}
spec:
  selector: { app: model, revision: ${rev} }
  ports:
    - { name: http, port: 8000, targetPort: http }
EOF
}

# $1, $2 = weights of v1 and v2.
manifest_route() {
  cat <<EOF
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata:
  name: chat
  namespace: ${DEMO_NS}
spec:
  rules:
    - matches:
        - path: { type: PathPrefix, value: /v1 }
      backends:
        - name: v1
          service: { name: model-v1, port: 8000 }
          weight: ${1}
        - name: v2
          service: { name: model-v2, port: 8000 }
          weight: ${2}
EOF
}

# Lets the unit test print every manifest without a cluster: `kind.sh --print-manifests`
# is handled before anything else runs (see the bottom of the file).
print_manifests() {
  manifest_base
  echo '---'
  manifest_controller
  echo '---'
  manifest_proxy
  echo '---'
  manifest_model_server v1
  echo '---'
  manifest_model_server v2
  echo '---'
  manifest_route 90 10
}

# --- checks -----------------------------------------------------------------------------------

# Sends $REQUESTS chat requests through the port-forward; prints "v1count v2count".
count_split() {
  local v1=0 v2=0 other=0 rev
  for _ in $(seq 1 "$REQUESTS"); do
    rev="$(curl -sS -o /dev/null -D - -X POST "http://127.0.0.1:${LOCAL_PORT}/v1/chat/completions" \
      -H 'content-type: application/json' \
      -d '{"model":"tiny-chat","messages":[{"role":"user","content":"hello"}]}' |
      tr -d '\r' | awk -F': ' 'tolower($1)=="x-model-revision" {print $2}')"
    case "$rev" in
      v1) v1=$((v1 + 1)) ;;
      v2) v2=$((v2 + 1)) ;;
      *) other=$((other + 1)) ;;
    esac
  done
  if ((other > 0)); then die "$other of $REQUESTS requests did not reach a model server"; fi
  echo "$v1 $v2"
}

# $1 = lowest and $2 = highest acceptable count of v2 out of $REQUESTS.
expect_v2_between() {
  local counts v1 v2
  counts="$(count_split)"
  read -r v1 v2 <<<"$counts"
  log "split over $REQUESTS requests: v1=$v1 v2=$v2 (v2 expected in [$1, $2])"
  ((v2 >= $1 && v2 <= $2)) || die "v2 got $v2 of $REQUESTS requests, outside [$1, $2]"
}

wait_programmed() {
  log "waiting for ModelRoute chat to be Programmed=True"
  k -n "$DEMO_NS" wait --for=condition=Programmed=True modelroute/chat --timeout=120s
  k -n "$DEMO_NS" get modelroutes
}

run() {
  check_tools
  trap cleanup EXIT
  setup_cluster

  log "namespaces, RBAC, push token"
  manifest_base | k apply -f -
  # Created here so the proxies can mount it at once; the controller uses an existing Secret.
  if ! k -n "$NS" get secret modelgate-push-token >/dev/null 2>&1; then
    k -n "$NS" create secret generic modelgate-push-token \
      --from-literal=token="$(head -c 32 /dev/urandom | base64 | tr -d '\n/+=')"
  fi

  log "controller (2 replicas) and proxy (2 replicas)"
  manifest_controller | k apply -f -
  manifest_proxy | k apply -f -

  log "model servers v1 and v2"
  { manifest_model_server v1; echo '---'; manifest_model_server v2; } | k apply -f -

  k -n "$NS" rollout status deployment/modelgate-controller --timeout=180s
  k -n "$NS" rollout status deployment/modelgate-proxy --timeout=180s
  k -n "$DEMO_NS" rollout status deployment/model-v1 --timeout=180s
  k -n "$DEMO_NS" rollout status deployment/model-v2 --timeout=180s

  log "ModelRoute chat: v1 90, v2 10"
  manifest_route 90 10 | k apply -f -
  wait_programmed

  log "port-forward svc/modelgate-proxy to 127.0.0.1:${LOCAL_PORT}"
  k -n "$NS" port-forward svc/modelgate-proxy "${LOCAL_PORT}:80" >"$WORK/port-forward.log" 2>&1 &
  PF_PID=$!
  for _ in $(seq 1 50); do
    if curl -s -o /dev/null "http://127.0.0.1:${LOCAL_PORT}/"; then break; fi
    sleep 0.2
  done
  curl -s -o /dev/null "http://127.0.0.1:${LOCAL_PORT}/" || die "port-forward did not come up: $(cat "$WORK/port-forward.log")"

  # 90/10 over 200 requests: v2 ~20; a wide band so chance does not fail the run (~5 sigma).
  expect_v2_between 3 45

  log "patching the weights to 50/50"
  k -n "$DEMO_NS" patch modelroute chat --type=json -p \
    '[{"op":"replace","path":"/spec/rules/0/backends/0/weight","value":50},{"op":"replace","path":"/spec/rules/0/backends/1/weight","value":50}]'
  # Programmed for the new generation: observedGeneration must catch up first.
  local gen
  gen="$(k -n "$DEMO_NS" get modelroute chat -o jsonpath='{.metadata.generation}')"
  for _ in $(seq 1 120); do
    [[ "$(k -n "$DEMO_NS" get modelroute chat -o jsonpath='{.status.conditions[?(@.type=="Programmed")].observedGeneration}')" == "$gen" ]] && break
    sleep 1
  done
  wait_programmed
  # 50/50 over 200 requests: v2 ~100.
  expect_v2_between 65 135

  log "PASS"
}

if [[ "${1:-}" == "--print-manifests" ]]; then
  rm -rf "$WORK"
  print_manifests
  exit 0
fi
run
