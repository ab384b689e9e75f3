#!/usr/bin/env bash
# Create the kind cluster with a local registry on localhost:5001 (the registry of
# components/images.py), following kind's "local registry" recipe:
# https://kind.sigs.k8s.io/docs/user/local-registry/
# Usage: scripts/kind-up.sh [cluster-name]   (needs docker, kind, kubectl)
set -euo pipefail

cluster="${1:-mlops}"
reg_name="kind-registry"
reg_port="5001"
# registry:2 pinned to an exact release.
reg_image="${REGISTRY_IMAGE:-registry:2.8.3}"
here="$(cd "$(dirname "$0")/.." && pwd)"

# 1. The registry container (kept across cluster re-creations).
if [ "$(docker inspect -f '{{.State.Running}}' "$reg_name" 2>/dev/null || true)" != "true" ]; then
  docker run -d --restart=always -p "127.0.0.1:${reg_port}:5000" --network bridge \
    --name "$reg_name" "$reg_image"
fi

# 2. The cluster (config_path for containerd is set in kind-config.yaml).
if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --config "$here/kind-config.yaml" --wait 120s
fi

# 3. On every node, localhost:5001 means the registry container.
for node in $(kind get nodes --name "$cluster"); do
  docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:${reg_port}"
  printf '[host."http://%s:5000"]\n' "$reg_name" |
    docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/localhost:${reg_port}/hosts.toml"
done

# 4. The registry joins the kind network so nodes can reach it by name.
if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$reg_name")" = "null" ]; then
  docker network connect kind "$reg_name"
fi

# 5. Document the registry for tools (KEP-1755).
kubectl --context "kind-${cluster}" apply -f "$here/manifests/kind/local-registry-hosting.yaml"
echo "kind cluster '$cluster' is up; registry at localhost:${reg_port}"
