#!/usr/bin/env bash
# `make test-cluster`: the live tests (tests/cluster_live) on a real kind cluster.
# Brings the cluster up when it is not (scripts/kind-up.sh) and then removes it
# again at the end (KEEP_CLUSTER=1 keeps it), loads the images the tests use
# (TEST_CLUSTER_IMAGES; `make images` first, which rebuilds only what changed), deploys
# Argo Workflows (`make deploy-argo`), and runs pytest
# with MLOPS_TEST_CLUSTER=1, so a missing tool fails instead of skipping.
# Prints the time of each step.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$here"
cluster="${KIND_CLUSTER:-mlops}"
context="${KUBE_CONTEXT:-kind-$cluster}"
python="${PYTHON:-.venv/bin/python}"
kind="$here/scripts/kind/kind"
images="${TEST_CLUSTER_IMAGES:?TEST_CLUSTER_IMAGES names the images to load}"
log() { echo "[test-cluster $(date +%T)] $*" >&2; }
t0=$SECONDS

created=no
if ! "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
  scripts/kind-up.sh "$cluster"
  created=yes
fi
teardown() {
  local rc=$?
  if [ "$created" = yes ] && [ -z "${KEEP_CLUSTER:-}" ]; then
    t=$SECONDS; scripts/kind-down.sh "$cluster" || rc=1
    log "cluster-down took $((SECONDS - t)) s"
    left="$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$cluster")"
    [ -z "$left" ] || { log "containers of cluster $cluster left behind: $left"; rc=1; }
  fi
  log "total $((SECONDS - t0)) s"
  exit "$rc"
}
trap teardown EXIT
log "cluster ready after $((SECONDS - t0)) s (created by this run: $created)"

# The images: current with the work tree (make images rebuilds only what changed, and
# is a no-op in under a second otherwise: stage pods run the compiled spec in git, so a
# stale image would run other code), then into the cluster the way it was made.
t=$SECONDS
make images
source="$(sed -n 's/^SOURCE=//p' "${KIND_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/kfp-mlops}/$cluster.env" 2>/dev/null || true)"
if [ "$source" = registry ]; then
  for image in $images; do docker push -q "$image"; done
else
  # shellcheck disable=SC2086
  "$kind" load docker-image --name "$cluster" $images
fi
log "images in the cluster after $((SECONDS - t)) s"

# Argo Workflows (built here, cached by its inputs) and our MinIO for
# tests/cluster_live/test_argo_engine.py; the other tests' MinIO stack is the same one.
# tests/cluster_live/test_gitops.py adds Flux (make gitops-up) after pushing its data.
t=$SECONDS
make --no-print-directory deploy-argo KIND_CLUSTER="$cluster" KUBE_CONTEXT="$context"
log "deploy-argo took $((SECONDS - t)) s"

t=$SECONDS
MLOPS_TEST_CLUSTER=1 KUBE_CONTEXT="$context" KIND_CLUSTER="$cluster" \
  "$python" -m pytest -m cluster -v tests/cluster_live
log "tests took $((SECONDS - t)) s"
