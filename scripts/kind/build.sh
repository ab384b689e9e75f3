#!/usr/bin/env bash
# Builds, from pinned sources (Go module proxy) and Debian packages, everything a
# kind cluster needs on a machine that cannot pull from any container registry:
# the kind and kubectl commands, the Kubernetes control-plane images, CoreDNS,
# etcd, pause, a local-path volume provisioner, kube-router's NetworkPolicy
# controller, and the kind node image itself (Debian's containerd, runc and CNI
# plugins, kind's own node files from its Go module, a bridge CNI, every image
# above preloaded). Versions: scripts/kind/versions.sh.
#
# Everything is cached outside the clone, keyed by version, and built only when
# missing: binaries under $KIND_CACHE_DIR/bin/<name>-<version>-<go version>/,
# image archives under $KIND_CACHE_DIR/images/, and two Docker images whose tags
# carry the versions (kfp-mlops/kind-debian, kfp-mlops/kind-node).
#
# Usage: scripts/kind/build.sh tools        # kind + kubectl; prints their directory
#        scripts/kind/build.sh node-image   # everything; prints the node image
#        scripts/kind/build.sh path         # prints the tools directory (no build)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/kind/versions.sh
. "$here/versions.sh"
command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
GO="${GO:-go}"
DOCKER="${DOCKER:-docker}"
CACHE="${KIND_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kfp-mlops/kind}"
# Module downloads use the caller's GOFLAGS except -mod (wrappers need -mod=mod).
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod"

log() { echo "[kind-build $(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

gover() { "$GO" env GOVERSION; }
module_dir() { "$GO" mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

# One cache directory per tool and version; a build writes NAME.tmp and renames
# it when complete, so an interrupted build leaves nothing that looks finished.
bin_dir() { echo "$CACHE/bin/$1-$2-$(gover)"; }
begin() { rm -rf "$1.tmp"; mkdir -p "$1.tmp"; log "building $(basename "$1")"; START=$SECONDS; }
finish() { rm -rf "$1"; mv "$1.tmp" "$1"; log "built $(basename "$1") in $((SECONDS - START)) s"; }

# -- binaries -----------------------------------------------------------------

K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubeadm kubelet kubectl)

build_kubernetes() {
  local out; out="$(bin_dir kubernetes "$K8S_VERSION")"
  [ -d "$out" ] && return 0
  grep -q "^require k8s.io/kubernetes $K8S_VERSION\$" "$here/k8s-wrapper/go.mod" ||
    die "scripts/kind/k8s-wrapper/go.mod does not require k8s.io/kubernetes $K8S_VERSION"
  begin "$out"
  # Version stamps: without them kubeadm reports v0.0.0 and asks for wrong image tags.
  local minor="${K8S_VERSION#v1.}" ldflags="-s -w" pkg
  minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$K8S_BUILD_DATE"
  done
  # One `go build` for all seven commands: they share most of their packages.
  (cd "$here/k8s-wrapper" &&
    "$GO" build -trimpath -ldflags "$ldflags" -o "$out.tmp/" \
      "${K8S_CMDS[@]/#/k8s.io/kubernetes/cmd/}")
  finish "$out"
}

build_etcd() {
  local out; out="$(bin_dir etcd "$ETCD_VERSION")"
  [ -d "$out" ] && return 0
  grep -q "go.etcd.io/etcd/server/v3 v$ETCD_VERSION\$" "$here/etcd-wrapper/go.mod" ||
    die "scripts/kind/etcd-wrapper/go.mod does not require etcd server v$ETCD_VERSION"
  begin "$out"
  (cd "$here/etcd-wrapper" && "$GO" build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" .)
  finish "$out"
}

# go_install NAME VERSION PACKAGE@VERSION [LDFLAGS]: for modules without replace directives.
go_install() {
  local out; out="$(bin_dir "$1" "$2")"
  [ -d "$out" ] && return 0
  begin "$out"
  GOBIN="$out.tmp" GOFLAGS="${GOFLAGS/-mod=mod/}" \
    "$GO" install -trimpath -ldflags "-s -w ${4:-}" "$3"
  finish "$out"
}

build_pause() {
  local out; out="$CACHE/bin/pause-$PAUSE_VERSION"
  [ -d "$out" ] && return 0
  begin "$out"
  local src; src="$(module_dir "k8s.io/kubernetes@$K8S_VERSION")/build/pause/linux/pause.c"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$out.tmp/pause" "$src"
  strip "$out.tmp/pause"
  finish "$out"
}

build_tools() {
  go_install kind "$KIND_VERSION" "sigs.k8s.io/kind@$KIND_VERSION"
  build_kubernetes
  # kind and kubectl side by side, so one directory goes on PATH.
  local tools; tools="$(tools_dir)"
  if [ ! -d "$tools" ]; then
    mkdir -p "$tools.tmp"
    ln -sf "$(bin_dir kind "$KIND_VERSION")/kind" "$tools.tmp/kind"
    ln -sf "$(bin_dir kubernetes "$K8S_VERSION")/kubectl" "$tools.tmp/kubectl"
    mv "$tools.tmp" "$tools"
  fi
}
tools_dir() { echo "$CACHE/bin/tools-kind-$KIND_VERSION-k8s-$K8S_VERSION-$(gover)"; }

build_binaries() {
  build_tools
  build_etcd
  go_install coredns "$COREDNS_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION" \
    "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
  go_install local-path-provisioner "$LOCAL_PATH_VERSION" \
    "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
  go_install kube-router "$KUBE_ROUTER_VERSION" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
  build_pause
}

# -- images -------------------------------------------------------------------

image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# The Debian userland every image below starts from: debootstrap of the pinned
# suite (with its updates and security archives), imported into Docker.
DEBIAN_IMAGE="kfp-mlops/kind-debian:$DEBIAN_SUITE-minbase"
build_debian_image() {
  image_exists "$DEBIAN_IMAGE" && return 0
  command -v debootstrap >/dev/null || die "debootstrap is needed (apt-get install debootstrap)"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  local tmp; tmp="$(mktemp -d)"; START=$SECONDS
  log "debootstrap $DEBIAN_SUITE from $DEBIAN_MIRROR"
  debootstrap --variant=minbase "$DEBIAN_SUITE" "$tmp/rootfs" "$DEBIAN_MIRROR" >"$tmp/log" 2>&1 ||
    { tail -20 "$tmp/log" >&2; rm -rf "$tmp"; die "debootstrap failed"; }
  local sec="${DEBIAN_MIRROR%/debian}/debian-security"
  cat >"$tmp/rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR $DEBIAN_SUITE main
deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main
deb $sec $DEBIAN_SUITE-security main
EOF
  rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
  tar -C "$tmp/rootfs" --numeric-owner -c . |
    "$DOCKER" import --change 'CMD ["/bin/bash"]' \
      --change "LABEL org.opencontainers.image.title=kind-debian org.opencontainers.image.version=$DEBIAN_SUITE" \
      - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$tmp"
  log "built $DEBIAN_IMAGE in $((SECONDS - START)) s"
}

# archive NAME:TAG -> the docker-archive file of that image in the cache.
archive() { local f="${1//\//_}"; echo "$CACHE/images/${f//:/_}-$(gover).tar"; }

# save_image REF: docker save into the cache, then drop the tag from Docker, so
# names like registry.k8s.io/... exist only inside kind nodes.
save_image() {
  mkdir -p "$CACHE/images"
  "$DOCKER" save -o "$(archive "$1").tmp" "$1"
  mv "$(archive "$1").tmp" "$(archive "$1")"
  "$DOCKER" rmi "$1" >/dev/null
}

# scratch_image REF ENTRYPOINT-JSON FILE...: an image holding only static binaries
# under /usr/local/bin (and their entry point), like the upstream distroless ones.
scratch_image() {
  local ref="$1" entry="$2"; shift 2
  [ -f "$(archive "$ref")" ] && return 0
  local tmp; tmp="$(mktemp -d)"
  mkdir -p "$tmp/usr/local/bin" "$tmp/tmp" "$tmp/etc"
  chmod 1777 "$tmp/tmp"
  cp "$@" "$tmp/usr/local/bin/"
  echo "nobody:x:65534:65534:nobody:/:/sbin/nologin" >"$tmp/etc/passwd"
  tar -C "$tmp" --numeric-owner --owner=0 --group=0 --mtime=@0 -c . |
    "$DOCKER" import --change "ENTRYPOINT $entry" --change 'ENV PATH=/usr/local/bin' - "$ref" >/dev/null
  rm -rf "$tmp"
  save_image "$ref"
  log "image $ref"
}

# debian_image REF PACKAGES ENTRYPOINT-JSON FILE...: the Debian image plus packages
# and binaries (for images that need iptables or a shell).
debian_image() {
  local ref="$1" pkgs="$2" entry="$3"; shift 3
  [ -f "$(archive "$ref")" ] && return 0
  local ctx; ctx="$(mktemp -d)"
  cp "$@" "$ctx/"
  {
    echo "FROM $DEBIAN_IMAGE"
    echo "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs \\"
    echo " && apt-get clean && rm -rf /var/lib/apt/lists/*"
    local f; for f in "$@"; do echo "COPY $(basename "$f") /usr/local/bin/"; done
    echo "ENTRYPOINT $entry"
  } >"$ctx/Dockerfile"
  "$DOCKER" build -q --force-rm -t "$ref" "$ctx" >/dev/null
  rm -rf "$ctx"
  save_image "$ref"
  log "image $ref"
}

PROVISIONER_IMAGE="kfp-mlops/local-path-provisioner:$LOCAL_PATH_VERSION"
# The provisioner's helper pod only runs `mkdir -p` and `rm -rf` in a shell.
HELPER_IMAGE="kfp-mlops/local-path-helper:$DEBIAN_SUITE"
KUBE_ROUTER_IMAGE="kfp-mlops/kube-router:$KUBE_ROUTER_VERSION"

build_component_images() {
  local k8s; k8s="$(bin_dir kubernetes "$K8S_VERSION")"
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    scratch_image "registry.k8s.io/$c:$K8S_VERSION" "[\"/usr/local/bin/$c\"]" "$k8s/$c"
  done
  # kube-proxy programs iptables and conntrack: Debian's, as in the node.
  debian_image "registry.k8s.io/kube-proxy:$K8S_VERSION" "iptables conntrack" \
    '["/usr/local/bin/kube-proxy"]' "$k8s/kube-proxy"
  scratch_image "registry.k8s.io/etcd:$ETCD_IMAGE_TAG" '["/usr/local/bin/etcd"]' \
    "$(bin_dir etcd "$ETCD_VERSION")/etcd"
  scratch_image "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" '["/usr/local/bin/coredns"]' \
    "$(bin_dir coredns "$COREDNS_VERSION")/coredns"
  scratch_image "registry.k8s.io/pause:$PAUSE_VERSION" '["/usr/local/bin/pause"]' \
    "$CACHE/bin/pause-$PAUSE_VERSION/pause"
  scratch_image "$PROVISIONER_IMAGE" '["/usr/local/bin/local-path-provisioner"]' \
    "$(bin_dir local-path-provisioner "$LOCAL_PATH_VERSION")/local-path-provisioner"
  if [ ! -f "$(archive "$HELPER_IMAGE")" ]; then
    "$DOCKER" tag "$DEBIAN_IMAGE" "$HELPER_IMAGE"
    save_image "$HELPER_IMAGE"
  fi
  debian_image "$KUBE_ROUTER_IMAGE" "iptables ipset iproute2 conntrack" \
    '["/usr/local/bin/kube-router"]' "$(bin_dir kube-router "$KUBE_ROUTER_VERSION")/kube-router"
}

component_images() {
  echo "registry.k8s.io/kube-apiserver:$K8S_VERSION registry.k8s.io/kube-controller-manager:$K8S_VERSION"
  echo "registry.k8s.io/kube-scheduler:$K8S_VERSION registry.k8s.io/kube-proxy:$K8S_VERSION"
  echo "registry.k8s.io/etcd:$ETCD_IMAGE_TAG registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
  echo "registry.k8s.io/pause:$PAUSE_VERSION $PROVISIONER_IMAGE $HELPER_IMAGE $KUBE_ROUTER_IMAGE"
}

# The node image's tag: the Kubernetes version and a hash of the whole recipe
# (versions, these scripts, the node files, the wrappers' module sums), so any
# change to what goes into the node makes a new tag and nothing stale is reused.
node_image_ref() {
  local sum
  sum="$( (cd "$here" && cat versions.sh build.sh node/* k8s-wrapper/go.sum etcd-wrapper/go.sum;
           gover) | sha256sum | cut -c1-12)"
  echo "kfp-mlops/kind-node:$K8S_VERSION-$sum"
}

build_node_image() {
  local ref; ref="$(node_image_ref)"
  image_exists "$ref" && { echo "$ref"; return 0; }
  build_binaries
  build_debian_image
  build_component_images
  START=$SECONDS
  log "building $ref"
  local ctx; ctx="$(mktemp -d)"
  local kind_files; kind_files="$(module_dir "sigs.k8s.io/kind@$KIND_VERSION")/images/base/files"
  [ -d "$kind_files" ] || die "no images/base/files in sigs.k8s.io/kind@$KIND_VERSION"
  cp -r "$kind_files" "$ctx/kind-files"
  chmod -R u+w "$ctx/kind-files"
  # The sandbox image: the pause tag kubeadm asks for (kind's own node build does the same).
  sed -i "s#sandbox_image = \"registry.k8s.io/pause:[^\"]*\"#sandbox_image = \"registry.k8s.io/pause:$PAUSE_VERSION\"#" \
    "$ctx/kind-files/etc/containerd/config.toml"
  grep -q "sandbox_image = \"registry.k8s.io/pause:$PAUSE_VERSION\"" "$ctx/kind-files/etc/containerd/config.toml" ||
    die "could not set the sandbox image in kind's containerd config"
  rm -rf "$ctx/kind-files/LICENSES"
  mkdir -p "$ctx/bin" "$ctx/node/kind/manifests" "$ctx/node/etc/cni/net.d" "$ctx/node/usr/local/bin"
  local k8s; k8s="$(bin_dir kubernetes "$K8S_VERSION")"
  cp "$k8s/kubeadm" "$k8s/kubelet" "$k8s/kubectl" "$ctx/bin/"
  cp "$here/node/mlops-node-init" "$ctx/node/usr/local/bin/"
  cp "$here/node/10-bridge.conflist" "$ctx/node/etc/cni/net.d/"
  sed -e "s#@PROVISIONER_IMAGE@#$PROVISIONER_IMAGE#g" -e "s#@HELPER_IMAGE@#$HELPER_IMAGE#g" \
    "$here/node/default-storage.yaml" >"$ctx/node/kind/manifests/default-storage.yaml"
  sed -e "s#@KUBE_ROUTER_IMAGE@#$KUBE_ROUTER_IMAGE#g" \
    "$here/node/default-cni.yaml" >"$ctx/node/kind/manifests/default-cni.yaml"
  echo "$K8S_VERSION" >"$ctx/node/kind/version"
  cp "$here/node/Dockerfile" "$ctx/Dockerfile"
  local stage="${ref}-stage"
  "$DOCKER" build -q --force-rm -t "$stage" --build-arg "BASE=$DEBIAN_IMAGE" \
    --label "org.opencontainers.image.version=$K8S_VERSION" \
    --label "io.kfp-mlops.kind.versions=kind=$KIND_VERSION etcd=$ETCD_VERSION coredns=$COREDNS_VERSION pause=$PAUSE_VERSION local-path=$LOCAL_PATH_VERSION kube-router=$KUBE_ROUTER_VERSION debian=$DEBIAN_SUITE" \
    "$ctx" >/dev/null
  rm -rf "$ctx"

  # Preload every image into the node's containerd (namespace k8s.io), as
  # `kind build node-image` does: containerd runs in a throwaway container of the
  # stage image, `ctr import` reads the archives, and the container is committed.
  local cid
  cid="$("$DOCKER" run -d --entrypoint /usr/bin/containerd "$stage" --config /dev/null)"
  local i
  for i in $(seq 60); do
    "$DOCKER" exec "$cid" ctr version >/dev/null 2>&1 && break
    sleep 1
  done
  local img
  for img in $(component_images); do
    "$DOCKER" exec -i "$cid" ctr -n k8s.io images import --no-unpack --all-platforms - \
      <"$(archive "$img")" >/dev/null || { "$DOCKER" rm -f "$cid" >/dev/null; die "import of $img failed"; }
  done
  "$DOCKER" exec "$cid" ctr -n k8s.io images ls -q | sort >&2
  "$DOCKER" stop -t 30 "$cid" >/dev/null
  "$DOCKER" commit \
    --change 'ENTRYPOINT ["/usr/local/bin/mlops-node-init", "/usr/local/bin/entrypoint", "/sbin/init"]' \
    --change 'CMD []' "$cid" "$ref" >/dev/null
  "$DOCKER" rm "$cid" >/dev/null
  "$DOCKER" rmi "$stage" >/dev/null
  # Older node images (other recipes) are dead weight of ~1.2 GB each; ones still
  # used by a container stay.
  local old
  for old in $("$DOCKER" images kfp-mlops/kind-node --format '{{.Repository}}:{{.Tag}}'); do
    [ "$old" = "$ref" ] || "$DOCKER" rmi "$old" >/dev/null 2>&1 || true
  done
  log "built $ref in $((SECONDS - START)) s"
  echo "$ref"
}

# The CRD files our manifests need, from the Go module zips (one path a line).
crds() {
  local d
  d="$(module_dir "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION")"
  echo "$d/manifests/crds/application-crd.yaml"
  d="$(module_dir "github.com/argoproj/argo-workflows/v3@$ARGO_WORKFLOWS_VERSION")"
  ls "$d"/manifests/base/crds/full/argoproj.io_*.yaml
}

case "${1:-}" in
  tools) build_tools; tools_dir ;;
  path) tools_dir ;;
  node-image) build_node_image ;;
  node-image-ref) node_image_ref ;;
  binaries) build_binaries ;;
  crds) crds ;;
  debian-image) build_debian_image; echo "$DEBIAN_IMAGE" ;;
  *) echo "usage: $0 tools|path|node-image|node-image-ref|binaries|debian-image|crds" >&2; exit 2 ;;
esac
