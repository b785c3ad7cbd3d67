#!/usr/bin/env bash
# End-to-end on kind: Istio (classic sidecars), Metacontroller, Katib, cert-manager, a stand-in
# ml-pipeline, and kubeflow-extension built from this checkout. Runs a Katib Experiment whose trials
# must reach ml-pipeline as their profile owner and then finish, and checks clean-up.
# Needs Docker, Go (for kind) and internet. KEEP_CLUSTER=1 leaves the cluster running.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../versions.env
source "$here/../versions.env"
cluster=${CLUSTER_NAME:-kubeflow-extension-e2e}
image=kubeflow-extension:e2e
work=$(mktemp -d)
export KUBECONFIG=$work/kubeconfig
bin=$work/bin
mkdir -p "$bin"
export PATH=$bin:$root/.venv/bin:$PATH

log() { printf '\n[e2e %(%H:%M:%S)T] %s\n' -1 "$*"; }
fail() { printf '\n[e2e] FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    log "diagnostics"
    kubectl get pods -A -o wide || true
    kubectl -n alice get experiments,trials,jobs,pods || true
    kubectl -n kubeflow-extension logs -l app.kubernetes.io/part-of=kubeflow-extension --tail=50 --prefix || true
  fi
  if [[ ${KEEP_CLUSTER:-} != 1 ]]; then kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: retry the command until it succeeds.
wait_for() {
  local what=$1 timeout=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
    sleep 5
  done
}

log "tools: kind $KIND_VERSION, istioctl $ISTIO_VERSION"
GOBIN=$bin go install "sigs.k8s.io/kind@v$KIND_VERSION"
curl -fsSL "https://github.com/istio/istio/releases/download/$ISTIO_VERSION/istioctl-$ISTIO_VERSION-linux-amd64.tar.gz" |
  tar -xz -C "$bin" istioctl

log "cluster"
kind create cluster --name "$cluster" --image "$KIND_NODE_IMAGE" --wait 120s

log "Istio $ISTIO_VERSION with classic sidecars (the case that needs the proxy stopped)"
istioctl install -y --set profile=minimal --set values.pilot.env.ENABLE_NATIVE_SIDECARS=false

log "cert-manager, Metacontroller, Katib"
kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/v$CERT_MANAGER_VERSION/cert-manager.yaml"
kubectl apply -k "https://github.com/metacontroller/metacontroller/manifests/production?ref=v$METACONTROLLER_IMAGE_VERSION"
kubectl apply --server-side -k "https://github.com/kubeflow/katib.git/manifests/v1beta1/installs/katib-standalone?ref=v$KATIB_VERSION"
# The CRDs written here: Kubeflow's Profile (Kubeflow itself is not installed) and the legacy ServiceRoleBinding.
kubectl apply -f "$root/tests/data/crds/"
kubectl -n cert-manager rollout status deploy --timeout=300s
kubectl -n kubeflow rollout status deploy --timeout=600s

log "stand-in ml-pipeline in kubeflow (in the mesh)"
kubectl label namespace kubeflow istio-injection=enabled --overwrite
kubectl apply -f "$here/ml-pipeline-standin.yaml"
kubectl -n kubeflow rollout status deploy/ml-pipeline --timeout=300s

log "kubeflow-extension from this checkout"
docker build -t "$image" "$root"
kind load docker-image "$image" --name "$cluster"
# The shipped kustomizations, with only the image replaced by the one just built.
for part in webhook/manifests metacontroller; do
  overlay=$work/overlay/$part
  mkdir -p "$overlay"
  cat >"$overlay/kustomization.yaml" <<YAML
resources:
- $(realpath --relative-to="$overlay" "$root/$part")
images:
- name: ghcr.io/kubeflow-extension/kubeflow-extension
  newName: ${image%%:*}
  newTag: ${image##*:}
YAML
  kubectl apply -k "$overlay"
done
kubectl -n kubeflow-extension rollout status deploy --timeout=300s

log "a profile namespace"
kubectl apply -f "$here/profile.yaml"
wait_for "the AuthorizationPolicy in kubeflow" 120 \
  kubectl -n kubeflow get authorizationpolicy kubeflow-extension-alice
wait_for "the EnvoyFilter in alice" 120 kubectl -n alice get envoyfilter kubeflow-extension-userid

log "a Katib Experiment of 4 trials, 2 in parallel"
kubectl apply -f "$here/experiment.yaml"
wait_for "the Experiment to succeed" 1200 \
  bash -c "kubectl -n alice get experiment owner-header -o jsonpath='{.status.conditions[?(@.type==\"Succeeded\")].status}' | grep -qx True"

trials=$(kubectl -n alice get trials -l katib.kubeflow.org/experiment=owner-header -o json)
count=$(jq '.items | length' <<<"$trials")
succeeded=$(jq '[.items[] | select(.status.conditions[]? | .type == "Succeeded" and .status == "True")] | length' <<<"$trials")
[[ $count == 4 && $succeeded == 4 ]] || fail "expected 4 succeeded trials, got $succeeded of $count"
bad=$(jq -r '[.items[] | .status.observation.metrics[]? | select(.name == "owner_match") | .latest] | map(select(. != "1")) | length' <<<"$trials")
[[ $bad == 0 ]] || fail "a trial did not see its owner's id: $(jq -c '[.items[].status.observation]' <<<"$trials")"
running=$(kubectl -n alice get pods -l katib.kubeflow.org/experiment=owner-header --field-selector=status.phase=Running -o name | wc -l)
[[ $running == 0 ]] || fail "$running trial pods are still running (the proxy was not stopped)"

log "clean-up when the namespace goes"
kubectl delete namespace alice --wait=true --timeout=300s
wait_for "the AuthorizationPolicy to be garbage-collected" 180 \
  bash -c "! kubectl -n kubeflow get authorizationpolicy kubeflow-extension-alice"
log "PASSED"
