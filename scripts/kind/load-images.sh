#!/usr/bin/env bash
# Loads Docker images into the kind cluster's nodes, skipping those every node
# already has with the same config digest (Docker's image ID). kind's own "already
# present" check runs crictl, which the node image built here lacks, so kind would
# load every image again each time (a minute here). With KIND_LOAD other than
# `kind` (a cluster with a registry), the images are pushed instead.
#
# Usage: KIND=... KIND_CLUSTER=mlops KIND_LOAD=kind scripts/kind/load-images.sh IMAGE...
set -euo pipefail
KIND="${KIND:-$(cd "$(dirname "$0")" && pwd)/kind}"
KIND_CLUSTER="${KIND_CLUSTER:-mlops}"
KIND_LOAD="${KIND_LOAD:-kind}"

node_has() {
  local id node manifest config
  id="$(docker image inspect -f '{{.Id}}' "$1")"
  for node in $("$KIND" get nodes --name "$KIND_CLUSTER"); do
    manifest="$(docker exec "$node" ctr -n k8s.io images ls 2>/dev/null | awk -v r="$1" '$1 == r {print $3}')"
    [ -n "$manifest" ] || return 1
    config="$(docker exec "$node" ctr -n k8s.io content get "$manifest" 2>/dev/null |
      python3 -c 'import json, sys; print(json.load(sys.stdin).get("config", {}).get("digest", ""))' 2>/dev/null)"
    [ "$config" = "$id" ] || return 1
  done
}

if [ "$KIND_LOAD" = kind ]; then
  load=()
  for image in "$@"; do node_has "$image" || load+=("$image"); done
  [ ${#load[@]} -eq 0 ] || "$KIND" load docker-image --name "$KIND_CLUSTER" "${load[@]}"
else
  for image in "$@"; do docker push -q "$image"; done
fi
