#!/usr/bin/env bash
# Delete what scripts/kind-up.sh made, and nothing else: the kind cluster (its
# node containers and kubeconfig context), the registry container only if
# cluster-up created it, and the `kind` Docker network only if cluster-up created
# it and nothing else uses it. Cached images and binaries stay (they make the
# next cluster-up fast). With --registry the registry container goes in any case.
# Usage: scripts/kind-down.sh [cluster-name] [--registry]
set -euo pipefail
cluster="${1:-mlops}"
here="$(cd "$(dirname "$0")/.." && pwd)"
kind="$here/scripts/kind/kind"
state_dir="${KIND_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/kfp-mlops}"
state="$state_dir/$cluster.env"

REGISTRY_CREATED=no NETWORK_CREATED=no
# shellcheck disable=SC1090
[ -f "$state" ] && . "$state"

"$kind" delete cluster --name "$cluster"

if [ "${2:-}" = "--registry" ] || [ "$REGISTRY_CREATED" = yes ]; then
  docker rm -f kind-registry >/dev/null 2>&1 && echo "Deleted the registry container kind-registry" || true
fi
if [ "$NETWORK_CREATED" = yes ] && docker network inspect kind >/dev/null 2>&1; then
  if [ "$(docker network inspect -f '{{len .Containers}}' kind)" = 0 ]; then
    docker network rm kind >/dev/null && echo "Deleted the Docker network kind"
  else
    echo "Docker network kind is still in use: kept"
  fi
fi
rm -f "$state"
