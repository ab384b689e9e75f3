#!/usr/bin/env bash
# Create the kind cluster (kind-config.yaml). Two ways, chosen by KIND_NODE_SOURCE
# (auto | registry | build; auto = registry when the registry image can be had):
#  - registry: kind's public node image and a local registry on localhost:5001
#    (the REGISTRY of mlops/config.py), following kind's "local registry"
#    recipe: https://kind.sigs.k8s.io/docs/user/local-registry/
#  - build: no container registry reachable. The node image and every image in
#    it are built from pinned sources (scripts/kind/build.sh, cached, so only the
#    first cluster-up builds), no registry container; images go into the node with
#    `kind load docker-image` (make kind-load with KIND_LOAD=kind, which mk/kind.mk
#    selects from the state this script records).
# Hosts where `docker run --privileged` fails (engine without CAP_SYS_RESOURCE)
# get kind's docker calls through scripts/kind/docker-shim; detected, never assumed.
# cluster-down (scripts/kind-down.sh) removes exactly what this made, using the
# state recorded in $KIND_STATE_DIR/<cluster>.env.
# Usage: scripts/kind-up.sh [cluster-name]   (needs docker; kind and kubectl are
# built when absent in build mode)
set -euo pipefail

cluster="${1:-mlops}"
reg_name="kind-registry"
reg_port="5001"
# registry:2 pinned to an exact release.
reg_image="${REGISTRY_IMAGE:-registry:2.8.3}"
here="$(cd "$(dirname "$0")/.." && pwd)"
kind="$here/scripts/kind/kind"
state_dir="${KIND_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/kfp-mlops}"
state="$state_dir/$cluster.env"
source="${KIND_NODE_SOURCE:-auto}"
log() { echo "[cluster-up $(date +%T)] $*" >&2; }
start=$SECONDS

docker info >/dev/null 2>&1 || { log "no Docker engine answers (make engine-up?)"; exit 1; }
mkdir -p "$state_dir"

if "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "kind cluster '$cluster' exists already; nothing to do"
  exit 0
fi

# 1. Which way: can the registry image be had (present, or pulled)?
if [ "$source" = auto ]; then
  if docker image inspect "$reg_image" >/dev/null 2>&1 || docker pull -q "$reg_image" >/dev/null 2>&1; then
    source=registry
  else
    source=build
    log "no container registry reachable (docker pull $reg_image failed): building the node image"
  fi
fi
case "$source" in registry | build) ;; *) log "KIND_NODE_SOURCE must be auto, registry or build"; exit 2 ;; esac

# 2. The node image, and kind/kubectl when building.
image_args=()
if [ "$source" = build ]; then
  PATH="$("$here/scripts/kind/build.sh" tools):$PATH"
  node_image="$("$here/scripts/kind/build.sh" node-image)"
  image_args=(--image "$node_image")
  probe_image="$node_image"
else
  probe_image="$reg_image"
fi

# 3. Does `docker run --privileged` work on this engine? (kind always asks for it.)
err="$(docker run --rm --privileged --entrypoint /bin/true "$probe_image" 2>&1 >/dev/null)" && shim=no || shim=needed
if [ "$shim" = needed ]; then
  case "$err" in
    *"unable to apply caps"* | *"operation not permitted"*)
      log "this engine cannot run --privileged containers ($err); kind's docker calls go through scripts/kind/docker-shim" ;;
    *) log "docker run --privileged $probe_image failed: $err"; exit 1 ;;
  esac
fi
echo "$shim" >"$state_dir/docker-shim"

# 4. The registry container (registry way only; kept if it was there before).
reg_created=no
if [ "$source" = registry ] && [ "$(docker inspect -f '{{.State.Running}}' "$reg_name" 2>/dev/null || true)" != "true" ]; then
  if docker inspect "$reg_name" >/dev/null 2>&1; then
    docker start "$reg_name" >/dev/null
  else
    docker run -d --restart=always -p "127.0.0.1:${reg_port}:5000" --network bridge \
      --label io.kfp-mlops.created-by=cluster-up --name "$reg_name" "$reg_image" >/dev/null
    reg_created=yes
  fi
fi

# 5. The cluster (config_path for containerd is set in kind-config.yaml).
net_created=no
docker network inspect kind >/dev/null 2>&1 || net_created=yes
cat >"$state" <<EOF
# written by scripts/kind-up.sh; read by scripts/kind-down.sh and mk/kind.mk
SOURCE=$source
NODE_IMAGE=${node_image:-kind default}
REGISTRY_CREATED=$reg_created
NETWORK_CREATED=$net_created
EOF
log "creating kind cluster '$cluster' (${node_image:-the default node image of kind})"
"$kind" create cluster --name "$cluster" --config "$here/kind-config.yaml" "${image_args[@]}" --wait 300s

if [ "$source" = registry ]; then
  # 6. On every node, localhost:5001 means the registry container.
  for node in $("$kind" get nodes --name "$cluster"); do
    docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:${reg_port}"
    printf '[host."http://%s:5000"]\n' "$reg_name" |
      docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/localhost:${reg_port}/hosts.toml"
  done
  # 7. The registry joins the kind network so nodes can reach it by name.
  if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$reg_name")" = "null" ]; then
    docker network connect kind "$reg_name"
  fi
  # 8. Document the registry for tools (KEP-1755).
  kubectl --context "kind-${cluster}" apply -f "$here/manifests/kind/local-registry-hosting.yaml"
  log "kind cluster '$cluster' is up in $((SECONDS - start)) s; registry at localhost:${reg_port}"
else
  # Storage and NetworkPolicy come with the node image (kind applies them): wait for both.
  kubectl --context "kind-${cluster}" -n local-path-storage rollout status deploy/local-path-provisioner --timeout=180s
  kubectl --context "kind-${cluster}" -n kube-system rollout status ds/kube-router --timeout=180s
  log "kind cluster '$cluster' is up in $((SECONDS - start)) s; no registry: load images with 'make kind-load' (KIND_LOAD=kind)"
fi
