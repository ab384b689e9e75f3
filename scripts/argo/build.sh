#!/usr/bin/env bash
# Builds Argo Workflows' in-cluster half from its Go module (pinned in
# scripts/kind/versions.sh: ARGO_WORKFLOWS_VERSION) for the kind cluster made
# without a container registry: the workflow-controller and argoexec binaries,
# their two images on our Debian-made base, and the CRD files of the same version.
#
# The module as served does not build argoexec (its package
# workflow/executor/osspecific has no Linux file), so the module is copied out of
# the module cache, our own scripts/argo/osspecific_linux.go is added to the copy,
# and a copy of the wrapper module (scripts/argo/wrapper) is pointed at it with a
# replace directive. The committed wrapper go.sum checks the module's own hash.
#
# Everything is cached outside the clone, keyed by its inputs, and built only when
# missing: binaries under $ARGO_CACHE_DIR/bin/<version>-<key>/ (key: the version, the
# wrapper's go.mod/go.sum/tools.go, the Linux file, the build function of this script
# and the Go version), CRDs
# under $ARGO_CACHE_DIR/crds/<version>/, images tagged <version>-<hash of the
# binaries' key, the Dockerfile and the base image's ID>.
#
# Usage: scripts/argo/build.sh binaries   # prints the binaries' directory
#        scripts/argo/build.sh images     # binaries + both images; prints NAME=ref lines
#        scripts/argo/build.sh refs       # the NAME=ref lines only (builds nothing; the
#                                         # base image must exist)
#        scripts/argo/build.sh crds       # prints the directory of the CRD files
#        scripts/argo/build.sh render     # overlays/kind-argo completed: the controller with
#                                         # its image refs, the credentials (make deploy-argo)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/kind/versions.sh
. "$repo/scripts/kind/versions.sh"
command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
GO="${GO:-go}"
DOCKER="${DOCKER:-docker}"
KUSTOMIZE="${KUSTOMIZE:-$repo/.tools/bin/kustomize}"
CACHE="${ARGO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kfp-mlops/argo}"
MODULE="github.com/argoproj/argo-workflows/v3"
# The registry prefix of our other images (components/images.py, via scripts/images.py).
REGISTRY="${REGISTRY:-$(python3 "$repo/scripts/images.py" | sed -n 's/^REGISTRY=//p')}"
CONTROLLER_NAME="mlops-argo-workflow-controller"
EXECUTOR_NAME="mlops-argoexec"
export CGO_ENABLED=0

log() { echo "[argo-build $(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

gover() { "$GO" env GOVERSION; }
# download_json: `go mod download -json` of the pinned module, checked against the
# wrapper's go.sum (run inside the wrapper module).
download_json() { (cd "$here/wrapper" && "$GO" mod download -json "$MODULE"); }
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p" | head -1; }

# The binaries' inputs: the version, the Go version, the wrapper module, our Linux
# file and the function below that builds them (not the rest of this script, so
# a change to the images or the rendering does not rebuild the binaries).
binaries_key() {
  (cd "$here" && printf '%s\n' "$ARGO_WORKFLOWS_VERSION" "$(gover)" &&
    cat wrapper/go.mod wrapper/go.sum wrapper/tools.go osspecific_linux.go &&
    declare -f build_binaries) |
    sha256sum | cut -c1-12
}
bin_dir() { echo "$CACHE/bin/$ARGO_WORKFLOWS_VERSION-$(binaries_key)"; }

build_binaries() {
  local out; out="$(bin_dir)"
  [ -x "$out/workflow-controller" ] && [ -x "$out/argoexec" ] && { echo "$out"; return 0; }
  grep -q "^require $MODULE $ARGO_WORKFLOWS_VERSION\$" "$here/wrapper/go.mod" ||
    die "scripts/argo/wrapper/go.mod does not require $MODULE $ARGO_WORKFLOWS_VERSION"
  local start=$SECONDS info src commit date
  info="$(download_json)"
  src="$(json_field Dir <<<"$info")"
  # The release's commit and time, from the proxy's .info file of that version.
  read -r commit date < <(python3 -c 'import json, sys; i = json.load(open(sys.argv[1]))
print(i.get("Origin", {}).get("Hash", ""), i["Time"])' "$(json_field Info <<<"$info")")
  [ -d "$src/workflow/executor/osspecific" ] || die "no $MODULE@$ARGO_WORKFLOWS_VERSION in the module cache"

  # The build tree: the module's copy (writable, with our Linux file) and a copy of
  # the wrapper whose go.mod points at it. Removed when the build succeeds.
  local work="$out.build"
  rm -rf "$work" "$out.tmp"
  mkdir -p "$work/wrapper" "$out.tmp"
  cp -r "$src" "$work/argo-workflows"
  chmod -R u+w "$work/argo-workflows"
  [ ! -e "$work/argo-workflows/workflow/executor/osspecific/signal_linux.go" ] ||
    die "$MODULE@$ARGO_WORKFLOWS_VERSION now ships signal_linux.go: drop osspecific_linux.go"
  cp "$here/osspecific_linux.go" "$work/argo-workflows/workflow/executor/osspecific/signal_linux.go"
  cp "$here/wrapper/go.mod" "$here/wrapper/go.sum" "$here/wrapper/tools.go" "$work/wrapper/"
  (cd "$work/wrapper" && "$GO" mod edit -replace "$MODULE=../argo-workflows")

  # Version stamps as upstream's Makefile sets them (argoexec version prints them).
  local pkg="$MODULE" ldflags="-s -w"
  ldflags+=" -X $pkg.version=$ARGO_WORKFLOWS_VERSION -X $pkg.gitTag=$ARGO_WORKFLOWS_VERSION"
  ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  log "building workflow-controller and argoexec $ARGO_WORKFLOWS_VERSION with $(gover) (CGO_ENABLED=0)"
  # One `go build` for both: they share most of their packages. -mod=readonly: the
  # committed go.sum must already hold every module of the build.
  (cd "$work/wrapper" &&
    "$GO" build -mod=readonly -trimpath -ldflags "$ldflags" -o "$out.tmp/" \
      "$MODULE/cmd/workflow-controller" "$MODULE/cmd/argoexec")
  "$out.tmp/argoexec" version >&2
  rm -rf "$work" "$out"
  mv "$out.tmp" "$out"
  log "built $out in $((SECONDS - start)) s"
  echo "$out"
}

# -- CRDs -------------------------------------------------------------------------

# The full CRDs (with schemas, so the API server validates Workflows and
# WorkflowTemplates) of the pinned version, copied from the module into the cache.
# They are about 7 MB and must be applied server-side (the last-applied annotation
# of a client-side apply would exceed the size limit).
crds_dir() { echo "$CACHE/crds/$ARGO_WORKFLOWS_VERSION"; }
build_crds() {
  local out; out="$(crds_dir)"
  if [ ! -d "$out" ]; then
    local src; src="$(download_json | json_field Dir)"
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    cp "$src"/manifests/base/crds/full/argoproj.io_*.yaml "$out.tmp/"
    chmod u+w "$out.tmp"/*
    rm -rf "$out"; mv "$out.tmp" "$out"
  fi
  echo "$out"
}

# -- images -----------------------------------------------------------------------

image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
base_image() {
  local ref; ref="$("$repo/scripts/base-image.sh" debian --ref)"
  echo "$ref"
}
# The tag of both images: the version and a hash of the binaries' key, the
# Dockerfile and the base image's ID (a re-made base makes new tags).
image_tag() {
  local base="$1" id
  id="$("$DOCKER" image inspect --format '{{.Id}}' "$base" 2>/dev/null)" ||
    die "base image $base is missing: make base-images (or scripts/base-image.sh debian)"
  echo "$ARGO_WORKFLOWS_VERSION-$( (binaries_key; cat "$here/Dockerfile"; echo "$id") |
    sha256sum | cut -c1-12)"
}
refs() {
  local tag; tag="$(image_tag "$(base_image)")"
  echo "ARGO_CONTROLLER_IMAGE=$REGISTRY/$CONTROLLER_NAME:$tag"
  echo "ARGO_EXECUTOR_IMAGE=$REGISTRY/$EXECUTOR_NAME:$tag"
}

build_images() {
  local base; base="$("$repo/scripts/base-image.sh" debian)"
  local tag; tag="$(image_tag "$base")"
  local controller="$REGISTRY/$CONTROLLER_NAME:$tag" executor="$REGISTRY/$EXECUTOR_NAME:$tag"
  if ! image_exists "$controller" || ! image_exists "$executor"; then
    local bins; bins="$(build_binaries)"
    local start=$SECONDS ctx; ctx="$(mktemp -d)"
    # Hard links when the cache and /tmp share a file system, else copies.
    cp -l "$bins/workflow-controller" "$bins/argoexec" "$ctx/" 2>/dev/null ||
      cp "$bins/workflow-controller" "$bins/argoexec" "$ctx/"
    cp "$here/Dockerfile" "$ctx/"
    local target ref
    for target in workflow-controller argoexec; do
      ref="$controller"; [ "$target" = argoexec ] && ref="$executor"
      image_exists "$ref" && continue
      "$DOCKER" build -q --force-rm --target "$target" -t "$ref" \
        --build-arg "BASE=$base" \
        --label "org.opencontainers.image.version=$ARGO_WORKFLOWS_VERSION" \
        --label "org.opencontainers.image.source=https://github.com/argoproj/argo-workflows" \
        --label "org.kfp-mlops.argo.binaries=$(basename "$bins")" \
        "$ctx" >/dev/null || { rm -rf "$ctx"; die "docker build of $ref failed"; }
      log "image $ref"
    done
    rm -rf "$ctx"
    log "images built in $((SECONDS - start)) s"
  fi
  echo "ARGO_CONTROLLER_IMAGE=$controller"
  echo "ARGO_EXECUTOR_IMAGE=$executor"
}

# -- the overlay, completed --------------------------------------------------------

# manifests/overlays/kind-argo plus what cannot be committed: the controller's
# Deployment (Component base/argo/controller) with its image references (their tags
# hash the build inputs), and the credentials (Component overlays/kind-argo/credentials
# reads the git-ignored env files of overlays/kind, so kustomize runs with
# --load-restrictor LoadRestrictionsNone). A throw-away kustomization in the cache
# wraps them; the base image must exist (`refs` reads its ID).
# ARGO_CONTROLLER_IMAGE / ARGO_EXECUTOR_IMAGE, when both set, are used as they are
# and ARGO_MANIFESTS replaces manifests/ (the offline tests render a copy).
render() {
  local controller="${ARGO_CONTROLLER_IMAGE:-}" executor="${ARGO_EXECUTOR_IMAGE:-}" line
  if [ -z "$controller" ] || [ -z "$executor" ]; then
    while read -r line; do
      case "$line" in
        ARGO_CONTROLLER_IMAGE=*) controller="${line#*=}" ;;
        ARGO_EXECUTOR_IMAGE=*) executor="${line#*=}" ;;
      esac
    done < <(refs)
  fi
  [ -n "$controller" ] && [ -n "$executor" ] || die "no image references"
  local dir; dir="$(mktemp -d "$CACHE/render.XXXXXX")"
  local manifests
  manifests="$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' \
    "${ARGO_MANIFESTS:-$repo/manifests}" "$dir")"
  cat >"$dir/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $manifests/overlays/kind-argo
components:
- $manifests/base/argo/controller
- $manifests/overlays/kind-argo/credentials
patches:
- patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: workflow-controller
      namespace: argo
    spec:
      template:
        spec:
          containers:
          - name: workflow-controller
            image: $controller
            env:
            - name: ARGO_EXECUTOR_IMAGE
              value: $executor
EOF
  "$KUSTOMIZE" build --load-restrictor LoadRestrictionsNone "$dir" || { rm -rf "$dir"; die "kustomize build failed"; }
  rm -rf "$dir"
}

mkdir -p "$CACHE"
case "${1:-}" in
  binaries) build_binaries ;;
  images) build_images ;;
  refs) refs ;;
  crds) build_crds ;;
  render) render ;;
  key) binaries_key ;;
  *) echo "usage: $0 binaries|images|refs|crds|render|key" >&2; exit 2 ;;
esac
