#!/usr/bin/env bash
# End-to-end on minikube: KEDA scales the built-in model's workers 0 -> N -> 0 around a
# chunked analysis, and the analysis completes. Not run by `make test` (no container engine
# on the development machines); run it where minikube works:
#
#   tests/e2e/minikube.sh                 # or: pytest -m e2e tests/e2e
#
# Needs: minikube, kubectl, a container driver (docker/podman/kvm2), and this repo's venv
# (`make install`: puts kubectl-oasis on PATH). Environment knobs:
#   PROFILE=oasis-e2e  KEDA_VERSION=2.17.2  K8S_VERSION=stable  MTLS=0|1  KEEP=0|1
#   CPUS=4  MEMORY=8g  TIMEOUT_S=900
# The steps are the operator guide's (README.md, "On Kubernetes with KEDA"), in order.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PROFILE="${PROFILE:-oasis-e2e}"
KEDA_VERSION="${KEDA_VERSION:-2.17.2}"
K8S_VERSION="${K8S_VERSION:-stable}"
MTLS="${MTLS:-0}"
KEEP="${KEEP:-0}"
TIMEOUT_S="${TIMEOUT_S:-900}"
NS=oasis
MODEL=synth
WORKER="oasis-worker-${MODEL}"
REDIS_PASSWORD=minikube-dev-only-redis   # from manifests/overlays/minikube
REDIS_LOCAL_PORT=16379
SCALER_LOCAL_PORT=16000
export PATH="${ROOT}/.venv/bin:${PATH}"

log() { printf '\n=== %s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
k() { kubectl --context "${PROFILE}" "$@"; }

for tool in minikube kubectl kubectl-oasis; do
  command -v "${tool}" >/dev/null || die "${tool} not on PATH (kubectl-oasis: make install)"
done

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "${pid}" 2>/dev/null || true; done
  if [[ "${KEEP}" != 1 ]]; then
    log "deleting minikube profile ${PROFILE} (KEEP=1 keeps it)"
    minikube delete -p "${PROFILE}" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

log "1. start minikube (Calico, so the NetworkPolicies are enforced)"
minikube start -p "${PROFILE}" --kubernetes-version="${K8S_VERSION}" --cni=calico \
  --cpus="${CPUS:-4}" --memory="${MEMORY:-8g}"

log "2. install KEDA ${KEDA_VERSION}"
k apply --server-side -f \
  "https://github.com/kedacore/keda/releases/download/v${KEDA_VERSION}/keda-${KEDA_VERSION}.yaml"
k wait --for condition=established --timeout=120s crd/scaledobjects.keda.sh \
  crd/triggerauthentications.keda.sh
k -n keda rollout status deploy/keda-operator --timeout=300s
k -n keda rollout status deploy/keda-operator-metrics-apiserver --timeout=300s

log "3. build the image inside minikube (numba cache warmed at build time)"
minikube -p "${PROFILE}" image build -t oasis-keda:dev "${ROOT}"

OVERLAY="${ROOT}/manifests/overlays/minikube"
if [[ "${MTLS}" == 1 ]]; then
  log "3b. mTLS: a CA, the scaler's server certificate and KEDA's client certificate"
  OVERLAY="${ROOT}/manifests/overlays/minikube-mtls"
  TLS="$(mktemp -d)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=oasis-e2e-ca -keyout "${TLS}/ca.key" -out "${TLS}/ca.crt" 2>/dev/null
  for who in scaler keda; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=oasis-${who}" \
      -keyout "${TLS}/${who}.key" -out "${TLS}/${who}.csr" 2>/dev/null
  done
  printf 'subjectAltName=DNS:oasis-scaler.%s.svc.cluster.local,DNS:oasis-scaler.%s.svc,DNS:localhost\n' \
    "${NS}" "${NS}" > "${TLS}/scaler.ext"
  openssl x509 -req -in "${TLS}/scaler.csr" -CA "${TLS}/ca.crt" -CAkey "${TLS}/ca.key" \
    -CAcreateserial -days 30 -extfile "${TLS}/scaler.ext" -out "${TLS}/scaler.crt" 2>/dev/null
  openssl x509 -req -in "${TLS}/keda.csr" -CA "${TLS}/ca.crt" -CAkey "${TLS}/ca.key" \
    -CAcreateserial -days 30 -out "${TLS}/keda.crt" 2>/dev/null
  k create namespace "${NS}" --dry-run=client -o yaml | k apply -f -
  k -n "${NS}" create secret generic oasis-scaler-tls --from-file=ca.crt="${TLS}/ca.crt" \
    --from-file=tls.crt="${TLS}/scaler.crt" --from-file=tls.key="${TLS}/scaler.key" \
    --dry-run=client -o yaml | k apply -f -
  k -n "${NS}" create secret generic oasis-keda-client-tls --from-file=ca.crt="${TLS}/ca.crt" \
    --from-file=tls.crt="${TLS}/keda.crt" --from-file=tls.key="${TLS}/keda.key" \
    --dry-run=client -o yaml | k apply -f -
fi

log "4. apply the overlay ${OVERLAY#"${ROOT}"/}"
k apply -k "${OVERLAY}"
for d in oasis-redis oasis-scaler oasis-controller oasis-api; do
  k -n "${NS}" rollout status "deploy/${d}" --timeout=300s
done
[[ "$(k -n "${NS}" get deploy "${WORKER}" -o jsonpath='{.spec.replicas}')" == 0 ]] \
  || die "the worker Deployment must start at 0 replicas"

log "5. write the built-in model onto the model-data volume (a one-off Job)"
k -n "${NS}" delete job oasis-model-synth --ignore-not-found
k -n "${NS}" apply -f - <<'EOF'
apiVersion: batch/v1
kind: Job
metadata:
  name: oasis-model-synth
  namespace: oasis
spec:
  backoffLimit: 1
  template:
    metadata:
      labels:
        app.kubernetes.io/part-of: oasis-keda
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: synth
          image: oasis-keda:dev
          args: ["model", "synth", "--dir", "/models/synth"]
          resources:
            requests: {cpu: 100m, memory: 256Mi}
            limits: {cpu: "1", memory: 1Gi}
          securityContext:
            runAsNonRoot: true
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: ["ALL"]}
            seccompProfile: {type: RuntimeDefault}
          volumeMounts:
            - {name: model-data, mountPath: /models}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - name: model-data
          persistentVolumeClaim: {claimName: oasis-model-data}
        - name: tmp
          emptyDir: {}
EOF
k -n "${NS}" wait --for=condition=complete --timeout=300s job/oasis-model-synth

log "6. register the model and give it the scaling the base manifests assume"
in_api() { k -n "${NS}" exec deploy/oasis-api -- oasis-keda "$@"; }
in_api models register "${MODEL}" --model-dir "/models/${MODEL}"

k -n "${NS}" port-forward svc/oasis-redis "${REDIS_LOCAL_PORT}:6379" >/dev/null 2>&1 &
PIDS+=("$!")
k -n "${NS}" port-forward svc/oasis-scaler "${SCALER_LOCAL_PORT}:6000" >/dev/null 2>&1 &
PIDS+=("$!")
sleep 3
export KUBECONFIG="${KUBECONFIG:-${HOME}/.kube/config}"
export OASIS_KEDA_REDIS_URL="redis://:${REDIS_PASSWORD}@127.0.0.1:${REDIS_LOCAL_PORT}/0"
OASIS=(kubectl oasis --context "${PROFILE}" -n "${NS}")
if [[ "${MTLS}" == 1 ]]; then
  OASIS+=(--scaler "localhost:${SCALER_LOCAL_PORT}" --scaler-ca "${TLS}/ca.crt"
          --scaler-cert "${TLS}/keda.crt" --scaler-key "${TLS}/keda.key")
else
  OASIS+=(--scaler "127.0.0.1:${SCALER_LOCAL_PORT}")
fi
"${OASIS[@]}" scale-config "${MODEL}" \
  --set '{"scaling_strategy": "DYNAMIC_TASKS", "worker_count_min": 0, "worker_count_max": 4, "chunks_per_worker": 2}'
"${OASIS[@]}" models
"${OASIS[@]}" status

log "7. submit an analysis: 4 lookup chunks, 8 loss chunks"
ANALYSIS_ID="$(in_api analyses create e2e --model "${MODEL}" \
  --locations "/models/${MODEL}/location.csv" --accounts "/models/${MODEL}/account.csv" \
  --settings "/models/${MODEL}/analysis_settings.json" \
  --chunking '{"lookup_strategy": "FIXED_CHUNKS", "fixed_lookup_chunks": 4, "loss_strategy": "FIXED_CHUNKS", "fixed_analysis_chunks": 8}' \
  | tail -n1)"
[[ "${ANALYSIS_ID}" =~ ^[0-9]+$ ]] || die "analysis id not printed: ${ANALYSIS_ID}"
( in_api analyses generate "${ANALYSIS_ID}" --wait --timeout "${TIMEOUT_S}" \
  && in_api analyses run "${ANALYSIS_ID}" --wait --timeout "${TIMEOUT_S}" ) > /tmp/oasis-e2e-run.log 2>&1 &
RUN_PID=$!

log "8. watch the workers: 0 -> N while the analysis runs"
replicas() { k -n "${NS}" get deploy "${WORKER}" -o jsonpath='{.spec.replicas}'; }
PEAK=0
deadline=$(( $(date +%s) + TIMEOUT_S ))
while kill -0 "${RUN_PID}" 2>/dev/null; do
  (( $(date +%s) < deadline )) || die "analysis did not finish in ${TIMEOUT_S}s"
  n="$(replicas)"; (( n > PEAK )) && PEAK=$n
  "${OASIS[@]}" status || true
  sleep 10
done
wait "${RUN_PID}" || { cat /tmp/oasis-e2e-run.log; die "the analysis failed"; }
cat /tmp/oasis-e2e-run.log
in_api analyses show "${ANALYSIS_ID}"
in_api analyses show "${ANALYSIS_ID}" --json | grep -q '"status": "RUN_COMPLETED"' \
  || die "analysis ${ANALYSIS_ID} is not RUN_COMPLETED"
(( PEAK >= 2 )) || die "workers peaked at ${PEAK}; expected N >= 2 for 8 chunks at 2 per worker"
log "analysis ${ANALYSIS_ID} completed; workers peaked at ${PEAK}"

log "9. watch the workers: N -> 0 after the cooldown"
deadline=$(( $(date +%s) + 600 ))
until [[ "$(replicas)" == 0 ]]; do
  (( $(date +%s) < deadline )) || die "workers did not return to 0 within 600 s"
  "${OASIS[@]}" status || true
  sleep 15
done
"${OASIS[@]}" status
log "PASS: workers 0 -> ${PEAK} -> 0, analysis ${ANALYSIS_ID} completed"
