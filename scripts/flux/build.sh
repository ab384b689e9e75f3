#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from their Go modules
# (version: FLUX_CONTROLLERS_VERSION below) for the kind
# cluster made without a container registry: the two binaries, their images on our
# Debian-made base, and the CRDs of the same module versions.
#
# Both modules' go.mod files carry replace directives, which `go install` refuses,
# so they build inside the wrapper module scripts/flux/wrapper (which repeats them,
# plus one for a module version the proxy does not serve). Its committed go.sum
# checks every module of the build (-mod=readonly).
#
# Everything is cached outside the clone, keyed by its inputs, and built only when
# missing: binaries under $FLUX_CACHE_DIR/bin/<version>-<key>/ (key: the version, the
# Go version, the wrapper's go.mod/go.sum/tools.go and the build function below),
# CRDs under $FLUX_CACHE_DIR/crds/<version>/, images tagged <version>-<hash of the
# binaries' key, the Dockerfile and the base image's ID>.
#
# Usage: scripts/flux/build.sh binaries   # prints the binaries' directory
#        scripts/flux/build.sh images     # binaries + both images; prints NAME=ref lines
#        scripts/flux/build.sh refs       # the NAME=ref lines only (builds nothing)
#        scripts/flux/build.sh crds       # prints the directory of the CRD files
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# Both controllers, through the wrapper module scripts/flux/wrapper (its go.mod
# requires both at this version: bump together). v1.9.6 is the newest that Go 1.26
# builds (v1.10.x declare go 1.27). Not in scripts/kind/versions.sh, which keys the
# kind node image: a Flux bump must not rebuild it.
FLUX_CONTROLLERS_VERSION=v1.9.6
command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
GO="${GO:-go}"
DOCKER="${DOCKER:-docker}"
CACHE="${FLUX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kfp-mlops/flux}"
VERSION="$FLUX_CONTROLLERS_VERSION"
CONTROLLERS=(source-controller kustomize-controller)
REGISTRY="${REGISTRY:-$(python3 "$repo/scripts/images.py" | sed -n 's/^REGISTRY=//p')}"
export CGO_ENABLED=0

log() { echo "[flux-build $(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

binaries_key() {
  (cd "$here" && printf '%s\n' "$VERSION" "$("$GO" env GOVERSION)" &&
    cat wrapper/go.mod wrapper/go.sum wrapper/tools.go && declare -f build_binaries) |
    sha256sum | cut -c1-12
}
bin_dir() { echo "$CACHE/bin/$VERSION-$(binaries_key)"; }

build_binaries() {
  local out; out="$(bin_dir)"
  [ -x "$out/source-controller" ] && [ -x "$out/kustomize-controller" ] && { echo "$out"; return 0; }
  local c
  for c in "${CONTROLLERS[@]}"; do
    grep -q "github.com/fluxcd/$c $VERSION" "$here/wrapper/go.mod" ||
      die "scripts/flux/wrapper/go.mod does not require github.com/fluxcd/$c $VERSION"
  done
  local start=$SECONDS
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  log "building ${CONTROLLERS[*]} $VERSION with $("$GO" env GOVERSION) (CGO_ENABLED=0)"
  # One `go build` for both: they share most of their packages.
  (cd "$here/wrapper" &&
    "$GO" build -mod=readonly -trimpath -ldflags "-s -w" -o "$out.tmp/" \
      "github.com/fluxcd/source-controller" "github.com/fluxcd/kustomize-controller")
  for c in "${CONTROLLERS[@]}"; do "$out.tmp/$c" --help >/dev/null 2>&1 || [ $? -eq 2 ] || die "$c does not start"; done
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built $out in $((SECONDS - start)) s"
  echo "$out"
}

# The CRDs of both modules (config/crd/bases), as the modules ship them.
crds_dir() { echo "$CACHE/crds/$VERSION"; }
build_crds() {
  local out; out="$(crds_dir)"
  if [ ! -d "$out" ]; then
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    local c src
    for c in "${CONTROLLERS[@]}"; do
      src="$(cd "$here/wrapper" && "$GO" list -mod=readonly -m -f '{{.Dir}}' "github.com/fluxcd/$c")"
      [ -d "$src/config/crd/bases" ] || (cd "$here/wrapper" && "$GO" mod download "github.com/fluxcd/$c")
      src="$(cd "$here/wrapper" && "$GO" list -mod=readonly -m -f '{{.Dir}}' "github.com/fluxcd/$c")"
      cp "$src"/config/crd/bases/*.yaml "$out.tmp/"
    done
    chmod u+w "$out.tmp"/*
    rm -rf "$out"; mv "$out.tmp" "$out"
  fi
  echo "$out"
}

image_tag() {
  local id
  id="$("$DOCKER" image inspect --format '{{.Id}}' "$1" 2>/dev/null)" ||
    die "base image $1 is missing: scripts/base-image.sh debian"
  echo "$VERSION-$( (binaries_key; cat "$here/Dockerfile"; echo "$id") | sha256sum | cut -c1-12)"
}
refs() {
  local tag; tag="$(image_tag "$("$repo/scripts/base-image.sh" debian --ref)")"
  echo "FLUX_SOURCE_CONTROLLER_IMAGE=$REGISTRY/mlops-flux-source-controller:$tag"
  echo "FLUX_KUSTOMIZE_CONTROLLER_IMAGE=$REGISTRY/mlops-flux-kustomize-controller:$tag"
}

build_images() {
  local base; base="$("$repo/scripts/base-image.sh" debian)"
  local tag c ref
  local -a missing=()
  tag="$(image_tag "$base")"
  for c in "${CONTROLLERS[@]}"; do
    "$DOCKER" image inspect "$REGISTRY/mlops-flux-$c:$tag" >/dev/null 2>&1 || missing+=("$c")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local bins; bins="$(build_binaries)"
    local ctx; ctx="$(mktemp -d)"
    cp "$bins"/* "$here/Dockerfile" "$ctx/"
    for c in "${missing[@]}"; do
      ref="$REGISTRY/mlops-flux-$c:$tag"
      "$DOCKER" build -q --force-rm --target "$c" -t "$ref" --build-arg "BASE=$base" \
        --label "org.opencontainers.image.version=$VERSION" \
        --label "org.opencontainers.image.source=https://github.com/fluxcd/$c" \
        "$ctx" >/dev/null || { rm -rf "$ctx"; die "docker build of $ref failed"; }
      log "image $ref"
    done
    rm -rf "$ctx"
  fi
  refs
}

mkdir -p "$CACHE"
# One build at a time: CI builds the images in the background while the cluster
# tests start, and `make gitops-up` (run by those tests) asks for them too; the
# second caller waits here, then finds them cached.
case "${1:-}" in
  binaries | images | crds) exec 9>"$CACHE/.build.lock"; flock 9 ;;
esac
case "${1:-}" in
  binaries) build_binaries ;;
  images) build_images ;;
  refs) refs ;;
  crds) build_crds ;;
  key) binaries_key ;;
  *) echo "usage: $0 binaries|images|refs|crds|key" >&2; exit 2 ;;
esac
