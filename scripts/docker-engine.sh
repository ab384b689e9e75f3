#!/usr/bin/env bash
# A Docker engine for `make images` and the container tests.
#
#   scripts/docker-engine.sh up     # use the running engine, else start dockerd
#   scripts/docker-engine.sh down   # stop the dockerd that `up` started, nothing else
#   scripts/docker-engine.sh status
#
# `up` starts the dockerd of the installed package (Debian: docker.io) in the
# background, with its pid file and log in $MLOPS_ENGINE_DIR (default
# /tmp/kfp-mlops-docker), and waits until `docker info` answers. `down` stops
# only a dockerd whose pid file is that one. DOCKERD_FLAGS adds flags to dockerd
# (e.g. a second engine: --host unix:///tmp/d.sock --data-root ... with DOCKER_HOST).
set -euo pipefail

STATE=${MLOPS_ENGINE_DIR:-/tmp/kfp-mlops-docker}
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
DOCKER=${DOCKER:-docker}
WAIT_SECONDS=${ENGINE_WAIT_SECONDS:-60}

say() { echo "engine: $*"; }

answers() { "$DOCKER" info >/dev/null 2>&1; }

# The pid in our pid file, if that process is a dockerd started with our pid file.
our_dockerd() {
  [[ -f $PIDFILE ]] || return 1
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)") == dockerd ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--pidfile $PIDFILE" || return 1
  echo "$pid"
}

up() {
  if answers; then
    say "using the running Docker engine ($("$DOCKER" info --format '{{.ServerVersion}}' 2>/dev/null))"
    return 0
  fi
  if ! command -v dockerd >/dev/null; then
    say "no Docker engine runs and dockerd is not installed: apt-get install docker.io (Debian/Ubuntu), then make engine-up" >&2
    return 1
  fi
  if [[ $(id -u) != 0 ]]; then
    say "no Docker engine answers, and starting dockerd needs root: sudo make engine-up (or start Docker your usual way)" >&2
    return 1
  fi
  mkdir -p "$STATE"
  local pid
  if ! pid=$(our_dockerd); then
    rm -f "$PIDFILE"
    # setsid: the engine outlives make and is not in its process group.
    # shellcheck disable=SC2086  # DOCKERD_FLAGS is a list of flags
    setsid dockerd --pidfile "$PIDFILE" ${DOCKERD_FLAGS:-} >"$LOG" 2>&1 </dev/null &
    pid=$!
  fi
  local waited=0
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "dockerd exited; the end of $LOG:" >&2
      tail -15 "$LOG" >&2
      return 1
    fi
    if (( waited >= WAIT_SECONDS )); then
      say "dockerd (pid $pid) did not answer within ${WAIT_SECONDS} s; see $LOG" >&2
      return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  say "started dockerd (pid $pid, log $LOG); make engine-down stops it"
}

down() {
  local pid
  if ! pid=$(our_dockerd); then
    rm -f "$PIDFILE"
    say "no dockerd started by engine-up is running; nothing stopped"
    return 0
  fi
  kill -TERM "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= 30 )); then
      say "dockerd (pid $pid) still runs 30 s after SIGTERM; see $LOG" >&2
      return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  rm -f "$PIDFILE"
  say "stopped dockerd (pid $pid)"
}

status() {
  local pid
  if pid=$(our_dockerd); then say "dockerd pid $pid, started by engine-up (log $LOG)"
  elif answers; then say "a Docker engine answers (not started by engine-up)"
  else say "no Docker engine answers"; fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: scripts/docker-engine.sh up|down|status" >&2; exit 2 ;;
esac
