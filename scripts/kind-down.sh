#!/usr/bin/env bash
# Delete the kind cluster; with --registry also the local registry container.
set -euo pipefail
cluster="${1:-mlops}"
kind delete cluster --name "$cluster"
if [ "${2:-}" = "--registry" ]; then
  docker rm -f kind-registry
fi
