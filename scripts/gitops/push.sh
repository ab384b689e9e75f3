#!/usr/bin/env bash
# `make gitops-push`: commit the GitOps folder (manifests/gitops and the schedules
# it includes) to the in-cluster repository and push it, as a user's `git push`
# would, then ask Flux to fetch it now (what a push webhook does).
#
#   scripts/gitops/push.sh [MESSAGE]
#
# The working clone is $GITOPS_DIR/repo (git-ignored). Its tree mirrors this
# project's paths (manifests/gitops/, schedules/), so the Kustomization's path is
# the same as an Argo CD Application's. GITOPS_SOURCE (default: this project) is
# the tree the folder is copied from. Same content as the repository's head: no
# commit, nothing pushed. Prints `pushed <commit>` or `unchanged <commit>` last.
# The push authenticates with .gitops/push.env, passed in the environment (never
# in a URL, the clone's config or the command line).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
KUBECTL="${KUBECTL:-kubectl}"
KIND_CLUSTER="${KIND_CLUSTER:-mlops}"
KUBE_CONTEXT="${KUBE_CONTEXT:-kind-$KIND_CLUSTER}"
GITOPS_DIR="${GITOPS_DIR:-$repo/.gitops}"
SOURCE="${GITOPS_SOURCE:-$repo}"
FOLDERS=(manifests/gitops schedules)
message="${1:-gitops: $(git -C "$repo" log -1 --format='%h %s' 2>/dev/null || echo 'update')}"
log() { echo "[gitops-push $(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }
[ -s "$GITOPS_DIR/push.env" ] || die "no $GITOPS_DIR/push.env: run make gitops-up first"

# A port-forward to the Git server's Service, on a free local port.
forward_log="$(mktemp)"
"$KUBECTL" --context "$KUBE_CONTEXT" -n mlops-git port-forward svc/git-server :80 >"$forward_log" 2>&1 &
forward=$!
trap 'kill $forward 2>/dev/null || true; rm -f "$forward_log"' EXIT
port=""
for _ in $(seq 100); do
  port="$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) .*/\1/p' "$forward_log" | head -1)"
  [ -n "$port" ] && break
  kill -0 $forward 2>/dev/null || die "port-forward failed: $(tr '\n' ' ' <"$forward_log")"
  sleep 0.2
done
[ -n "$port" ] || die "port-forward did not start"
url="http://127.0.0.1:$port/mlops.git"

# Credentials for git's HTTP requests, from the environment only.
user="$(sed -n 's/^username=//p' "$GITOPS_DIR/push.env")"
password="$(sed -n 's/^password=//p' "$GITOPS_DIR/push.env")"
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader
GIT_CONFIG_VALUE_0="Authorization: Basic $(printf '%s:%s' "$user" "$password" | base64 -w0)"
export GIT_CONFIG_VALUE_0 GIT_TERMINAL_PROMPT=0
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-mlops gitops-push}" GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-gitops@mlops.invalid}"
export GIT_COMMITTER_NAME="$GIT_AUTHOR_NAME" GIT_COMMITTER_EMAIL="$GIT_AUTHOR_EMAIL"

clone="$GITOPS_DIR/repo"
[ -d "$clone/.git" ] || git init -q -b main "$clone"
g() { git -C "$clone" "$@"; }
g fetch -q "$url" "+refs/heads/main:refs/remotes/origin/main" 2>/dev/null || true
if g rev-parse -q --verify refs/remotes/origin/main >/dev/null; then
  g checkout -q -B main refs/remotes/origin/main
  g reset -q --hard refs/remotes/origin/main
fi
# The folders exactly as in the source: files removed there are removed here.
for folder in "${FOLDERS[@]}"; do
  rm -rf "${clone:?}/$folder"
  mkdir -p "$clone/$(dirname "$folder")"
  cp -R "$SOURCE/$folder" "$clone/$folder"
done
g add -A -- "${FOLDERS[@]}"
if g rev-parse -q --verify HEAD >/dev/null && g diff --cached --quiet; then
  log "the repository already holds this content: nothing to push"
  echo "unchanged $(g rev-parse HEAD)"
  exit 0
fi
g commit -q -m "$message"
commit="$(g rev-parse HEAD)"
g push -q "$url" main:main
# As `flux reconcile source git` does: the controller fetches at once.
"$KUBECTL" --context "$KUBE_CONTEXT" -n flux-system annotate --overwrite gitrepository/mlops-gitops \
  "reconcile.fluxcd.io/requestedAt=$(date +%s.%N)" >/dev/null
log "pushed $commit ($message)"
echo "pushed $commit"
