#!/usr/bin/env bash
# `make gitops-up`: Flux and the in-cluster Git server on the kind cluster, on top
# of `make deploy-argo` (docs/cluster.md, "GitOps with Flux"). Idempotent; prints
# the time of each step.
#
#   1. Flux's two images (scripts/flux/build.sh images: cached, built when missing)
#   2. into the cluster, with the Git server's and the submitter's images
#   3. Flux's CRDs of the same module versions
#   4. the Git server's push credentials: a random password in the git-ignored
#      .gitops/push.env (made once), as the Secret git-push-credentials
#   5. overlays/kind-gitops with the controllers' image references; wait until ready
#   6. the repository seeded with this project's GitOps folder (scripts/gitops/push.sh)
#
# Settings from mk/gitops.mk: KIND, KUBECTL, KUSTOMIZE, KIND_CLUSTER, KUBE_CONTEXT,
# KIND_LOAD, PYTHON, GITOPS_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
KUBECTL="${KUBECTL:-kubectl}"
KIND_CLUSTER="${KIND_CLUSTER:-mlops}"
KUBE_CONTEXT="${KUBE_CONTEXT:-kind-$KIND_CLUSTER}"
KUSTOMIZE="${KUSTOMIZE:-$repo/.tools/bin/kustomize}"
PYTHON="${PYTHON:-.venv/bin/python}"
GITOPS_DIR="${GITOPS_DIR:-$repo/.gitops}"
log() { echo "[gitops-up $(date +%T)] $*" >&2; }
kubectl() { "$KUBECTL" --context "$KUBE_CONTEXT" "$@"; }
image_ref() { python3 scripts/images.py | sed -n "s/^$1=//p"; }
t0=$SECONDS

t=$SECONDS
refs="$(nice -n 10 scripts/flux/build.sh images)"
source_image="$(sed -n 's/^FLUX_SOURCE_CONTROLLER_IMAGE=//p' <<<"$refs")"
kustomize_image="$(sed -n 's/^FLUX_KUSTOMIZE_CONTROLLER_IMAGE=//p' <<<"$refs")"
log "images after $((SECONDS - t)) s"

t=$SECONDS
scripts/kind/load-images.sh "$source_image" "$kustomize_image" "$(image_ref GIT_IMAGE)" "$(image_ref BASE_IMAGE)"
log "images in the cluster after $((SECONDS - t)) s"

t=$SECONDS
crds="$(scripts/flux/build.sh crds)"
kubectl apply --server-side --force-conflicts -f "$crds" >/dev/null
names=()
for f in "$crds"/*.yaml; do names+=("crd/$(sed -n 's/^  name: //p' "$f" | head -1)"); done
kubectl wait --for condition=established --timeout=120s "${names[@]}" >/dev/null
log "${#names[@]} Flux CRDs ($(basename "$crds")) established after $((SECONDS - t)) s"

t=$SECONDS
mkdir -p "$GITOPS_DIR"
if [ ! -s "$GITOPS_DIR/push.env" ]; then
  # The cluster's credentials when it has a Git server already (another clone made
  # it), so its password and its pod stay as they are; else a new random one.
  secret="$(kubectl -n mlops-git get deployment git-server \
    -o jsonpath='{.spec.template.spec.volumes[?(@.name=="credentials")].secret.secretName}' 2>/dev/null || true)"
  (
    umask 077
    if [ -n "$secret" ] && password="$(kubectl -n mlops-git get secret "$secret" -o jsonpath='{.data.password}' | base64 -d)" &&
      [ -n "$password" ]; then
      printf 'username=mlops\npassword=%s\n' "$password" >"$GITOPS_DIR/push.env"
    else
      printf 'username=mlops\npassword=%s\n' "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >"$GITOPS_DIR/push.env"
    fi
  )
fi
render="$(mktemp -d)"
trap 'rm -rf "$render"' EXIT
cp "$GITOPS_DIR/push.env" "$render/push.env"
manifests="$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$repo/manifests" "$render")"
cat >"$render/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $manifests/overlays/kind-gitops
images:
- name: mlops-flux-source-controller
  newName: ${source_image%:*}
  newTag: ${source_image##*:}
- name: mlops-flux-kustomize-controller
  newName: ${kustomize_image%:*}
  newTag: ${kustomize_image##*:}
secretGenerator:
- name: git-push-credentials
  namespace: mlops-git
  envs:
  - push.env
YAML
"$KUSTOMIZE" build --load-restrictor LoadRestrictionsNone "$render" | kubectl apply --server-side --force-conflicts -f - >/dev/null
log "overlays/kind-gitops applied after $((SECONDS - t)) s"

t=$SECONDS
# A changed image or password rolls a Deployment: wait for the rollout itself first.
for deployment in flux-system/source-controller flux-system/kustomize-controller mlops-git/git-server; do
  kubectl -n "${deployment%/*}" rollout status "deployment/${deployment#*/}" --timeout=300s >/dev/null
done
"$PYTHON" scripts/wait_ready.py --context "$KUBE_CONTEXT" -n flux-system -n mlops-git --timeout 600 --interval 5
log "ready after $((SECONDS - t)) s"

t=$SECONDS
"$here/push.sh" "seed: the GitOps folder of $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'this project')"
log "seeded after $((SECONDS - t)) s (total $((SECONDS - t0)) s)"
