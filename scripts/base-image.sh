#!/usr/bin/env bash
# Local base images made from Debian packages, for machines that cannot pull the
# public bases of images/Dockerfile.* (python:3.11.14-slim-bookworm,
# debian:12.12-slim, golang:1.26.8-bookworm): no registry, or no network to one.
#
#   scripts/base-image.sh debian   # debootstrap minbase + ca-certificates
#   scripts/base-image.sh python   # debian + python3 (3.11 on bookworm) + python3-venv
#   scripts/base-image.sh golang   # debian + the host's Go toolchain (GOROOT)
#   scripts/base-image.sh VARIANT --ref   # only print the reference, build nothing
#
# Prints the image reference on stdout (progress goes to stderr). Each image is
# tagged with a key over its inputs (this script, the suite, the package lists
# and, for golang, the Go version), so it is made once and then reused.
# Needs root (debootstrap) and a Docker engine whose containers reach the mirror.
set -euo pipefail

variant=${1:?usage: scripts/base-image.sh debian|python|golang [--ref]}
ref_only=${2:-}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DOCKER=${DOCKER:-docker}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
REPO=mlops-local
DEBIAN_PACKAGES=ca-certificates
PYTHON_PACKAGES="python3 python3-venv"
KEY_LABEL=org.kfp-mlops.base.key

log() { echo "base-image: $*" >&2; }

key_of() {  # key_of INPUT...: 12 hex digits over this script and the inputs
  { cat "${BASH_SOURCE[0]}"; printf '%s\n' "$@"; } | sha256sum | cut -c1-12
}

present() {  # with --ref: pretend present, so nothing is made
  [[ $ref_only == --ref ]] || "$DOCKER" image inspect "$1" >/dev/null 2>&1
}

# A throw-away container, removed on exit whatever happens.
container=""
rootfs=""
raw=""
cleanup() {
  [[ -n $container ]] && "$DOCKER" rm -f "$container" >/dev/null 2>&1 || true
  [[ -n $raw ]] && "$DOCKER" rmi "$raw" >/dev/null 2>&1 || true
  [[ -n $rootfs ]] && rm -rf "$rootfs" || true
}
trap cleanup EXIT

debian_ref() { echo "$REPO/debian:$SUITE-$(key_of debian "$SUITE" "$DEBIAN_PACKAGES")"; }

make_debian() {
  local ref=$1
  raw="$1-rootfs"
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
  [[ $(id -u) == 0 ]] || { log "debootstrap needs root"; exit 1; }
  rootfs=$(mktemp -d /tmp/mlops-rootfs.XXXXXX)
  log "debootstrap --variant=minbase $SUITE (about a minute)"
  debootstrap --variant=minbase --include="${DEBIAN_PACKAGES// /,}" "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  # As debian:*-slim: no documentation or translations, now or from later installs.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # The release, its updates and its security fixes (debootstrap knows only the first).
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  tar -C "$rootfs" -c . | "$DOCKER" import - "$raw" >/dev/null
  rm -rf "$rootfs"; rootfs=""
  # Apply the updates in a container, then flatten into one layer.
  log "apt-get upgrade"
  container=$("$DOCKER" create "$raw" sh -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*')
  "$DOCKER" start -a "$container" >&2
  "$DOCKER" export "$container" | "$DOCKER" import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "LABEL $KEY_LABEL=${ref##*-} org.opencontainers.image.description=\"Debian $SUITE minbase (debootstrap), made by scripts/base-image.sh\"" \
    --change 'CMD ["bash"]' - "$ref" >/dev/null
  "$DOCKER" rm "$container" >/dev/null; container=""
  "$DOCKER" rmi "$raw" >/dev/null; raw=""
}

# Run a command in a container of image $1 and commit the result as $2.
derive() {
  local from=$1 ref=$2; shift 2
  local changes=()
  while [[ $1 == --change ]]; do changes+=(--change "$2"); shift 2; done
  container=$("$DOCKER" create "$from" "$@")
  "$DOCKER" start -a "$container" >&2
  "$DOCKER" commit "${changes[@]}" --change "LABEL $KEY_LABEL=${ref##*-}" "$container" "$ref" >/dev/null
  "$DOCKER" rm "$container" >/dev/null; container=""
}

ensure_debian() {  # sets $from to the debian image, made if missing
  from=$(debian_ref)
  present "$from" || { log "making $from"; make_debian "$from"; }
}

case $variant in
  debian)
    ensure_debian
    ref=$from
    ;;
  python)
    ref="$REPO/python:$SUITE-$(key_of python "$SUITE" "$DEBIAN_PACKAGES" "$PYTHON_PACKAGES")"
    if ! present "$ref"; then
      ensure_debian
      log "making $ref"
      derive "$from" "$ref" \
        --change "LABEL org.opencontainers.image.description=\"Debian $SUITE + python3, made by scripts/base-image.sh\"" \
        --change 'CMD ["python3"]' \
        sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PYTHON_PACKAGES >/dev/null \
               && apt-get clean && rm -rf /var/lib/apt/lists/* && python3 --version"
    fi
    ;;
  golang)
    [[ -x $GO ]] || { log "no Go toolchain at $GO: install Go or set GO=/path/to/go"; exit 1; }
    go_version=$("$GO" env GOVERSION)
    goroot=$("$GO" env GOROOT)
    ref="$REPO/golang:${go_version#go}-$SUITE-$(key_of golang "$SUITE" "$DEBIAN_PACKAGES" "$go_version")"
    if ! present "$ref"; then
      ensure_debian
      log "making $ref from $goroot"
      container=$("$DOCKER" create "$from" true)
      "$DOCKER" cp "$goroot" "$container:/usr/local/go"
      "$DOCKER" commit \
        --change "ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV GOLANG_VERSION=${go_version#go} GOPATH=/go" \
        --change "LABEL $KEY_LABEL=${ref##*-} org.opencontainers.image.description=\"Debian $SUITE + $go_version (the host's GOROOT), made by scripts/base-image.sh\"" \
        "$container" "$ref" >/dev/null
      "$DOCKER" rm "$container" >/dev/null; container=""
    fi
    ;;
  *) echo "usage: scripts/base-image.sh debian|python|golang" >&2; exit 2 ;;
esac
echo "$ref"
