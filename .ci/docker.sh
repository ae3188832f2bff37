#!/usr/bin/env bash
# Make a Docker engine usable for the image tests, idempotently:
#   1. install Debian's docker.io when dockerd is missing (needs root + apt),
#   2. start dockerd in the background when `docker info` does not answer,
#   3. wait until `docker info` works (DOCKER_WAIT seconds, default 60).
# Used by .ci/run before `make test`. Safe to call any number of times.
set -euo pipefail

DOCKER_WAIT="${DOCKER_WAIT:-60}"
LOG_DIR="${DOCKERD_LOG_DIR:-/var/log}"

log() { printf '.ci/docker.sh: %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  log "docker engine already running"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  log "not root: cannot install or start dockerd; the image tests will be skipped"
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing docker.io from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io iptables ca-certificates >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  rm -f /var/run/docker.pid  # left by a dockerd that did not stop cleanly: it would refuse to start
  log "starting dockerd in the background (log: ${LOG_DIR}/dockerd.log)"
  # setsid: dockerd must survive the shell that started it.
  setsid dockerd >"${LOG_DIR}/dockerd.log" 2>&1 </dev/null &
fi

for _ in $(seq "${DOCKER_WAIT}"); do
  if docker info >/dev/null 2>&1; then
    log "docker engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  sleep 1
done

log "dockerd did not answer within ${DOCKER_WAIT}s; last log lines:"
tail -n 20 "${LOG_DIR}/dockerd.log" >&2 || true
exit 1
