#!/usr/bin/env bash
# `make deploy-argo`: Argo Workflows and our MinIO on the kind cluster, without KFP
# (docs/cluster.md, "Argo Workflows on kind"). Idempotent; prints the time of each step.
#
#   1. the two Argo images (scripts/argo/build.sh images: cached, built when missing)
#   2. into the cluster with the MinIO image: `kind load` (a cluster made without a
#      registry, KIND_LOAD=kind) or a push to the kind registry
#   3. the Argo CRDs of the same version (cluster-scoped, server-side: they are large)
#   4. overlays/kind-argo completed by `scripts/argo/build.sh render` (controller
#      with its image references, credentials), after deleting MinIO's bucket Job
#      (its template cannot change in place; it is idempotent), as `make deploy` does
#   5. wait until MinIO, its bucket Job and the controller are ready
#
# Settings from mk/argo.mk: KIND, KUBECTL, KUSTOMIZE, KIND_CLUSTER, KUBE_CONTEXT,
# KIND_LOAD, MINIO_IMAGE, PYTHON.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
KIND="${KIND:-$repo/scripts/kind/kind}"
KUBECTL="${KUBECTL:-kubectl}"
KIND_CLUSTER="${KIND_CLUSTER:-mlops}"
KUBE_CONTEXT="${KUBE_CONTEXT:-kind-$KIND_CLUSTER}"
KIND_LOAD="${KIND_LOAD:-kind}"
PYTHON="${PYTHON:-.venv/bin/python}"
MINIO_IMAGE="${MINIO_IMAGE:?MINIO_IMAGE names our MinIO image (scripts/images.py)}"
export KUSTOMIZE="${KUSTOMIZE:-$repo/.tools/bin/kustomize}"
log() { echo "[deploy-argo $(date +%T)] $*" >&2; }
kubectl() { "$KUBECTL" --context "$KUBE_CONTEXT" "$@"; }
t0=$SECONDS

t=$SECONDS
refs="$(nice -n 10 "$here/build.sh" images)"
controller="$(sed -n 's/^ARGO_CONTROLLER_IMAGE=//p' <<<"$refs")"
executor="$(sed -n 's/^ARGO_EXECUTOR_IMAGE=//p' <<<"$refs")"
log "images $controller $executor after $((SECONDS - t)) s"

t=$SECONDS
KIND="$KIND" KIND_CLUSTER="$KIND_CLUSTER" KIND_LOAD="$KIND_LOAD" \
  "$repo/scripts/kind/load-images.sh" "$controller" "$executor" "$MINIO_IMAGE"
log "images in the cluster after $((SECONDS - t)) s"

# The CRDs are 7 MB: applied only when one lacks the label that says which version of
# ours was applied last (scripts/kind/versions.sh's, which also pins the files).
t=$SECONDS
crds="$("$here/build.sh" crds)"
version="$(basename "$crds")"
names=()
for f in "$crds"/*.yaml; do
  names+=("crd/$(sed -n 's/^  name: //p' "$f" | head -1)")
done
label=kfp-mlops.io/argo-workflows-version
current="$(kubectl get "${names[@]}" -o "jsonpath={range .items[*]}{.metadata.labels.kfp-mlops\.io/argo-workflows-version}{'\n'}{end}" 2>/dev/null || true)"
if [ "$(grep -cx "$version" <<<"$current")" -ne "${#names[@]}" ]; then
  kubectl apply --server-side --force-conflicts -f "$crds" >/dev/null
  kubectl label --overwrite "${names[@]}" "$label=$version" >/dev/null
fi
kubectl wait --for condition=established --timeout=120s "${names[@]}" >/dev/null
log "${#names[@]} CRDs ($version) established after $((SECONDS - t)) s"

t=$SECONDS
kubectl -n mlops-minio delete job minio-buckets --ignore-not-found >/dev/null
"$here/build.sh" render | kubectl apply --server-side --force-conflicts -f - >/dev/null
log "overlays/kind-argo applied after $((SECONDS - t)) s"

t=$SECONDS
"$PYTHON" scripts/wait_ready.py --context "$KUBE_CONTEXT" -n mlops-minio -n argo --timeout 900 --interval 5
log "ready after $((SECONDS - t)) s (total $((SECONDS - t0)) s)"
