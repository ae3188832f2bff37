#!/usr/bin/env bash
# Build the dagfleet image (what `make image` runs).
#
# The base is AIRFLOW_IMAGE (default apache/airflow:<locked version>) when it is on this machine or
# can be pulled; otherwise the local stand-in BASE_IMAGE built by docker/base/build.sh (no registry
# reachable, as in CI). Setting AIRFLOW_IMAGE=BASE_IMAGE asks for the stand-in directly.
# Prints the image size and how much it adds on top of its base.
#
# Tags: IMAGE (default dagfleet:dev); with the default IMAGE also dagfleet:<version>, the tag the
# Helm chart uses (its appVersion; tests/image/test_image_tags.py keeps every version equal and
# every tag the docs and the chart name among these). PRINT_TAGS=1 prints the tags and stops.
#
# Env: IMAGE, AIRFLOW_IMAGE, BASE_IMAGE, DOCKER_BUILD_ARGS (extra args), PRINT_TAGS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# shellcheck source=docker/lockpin.sh
. "${ROOT}/docker/lockpin.sh"
AIRFLOW_VERSION="$(pin apache-airflow)"
IMAGE="${IMAGE:-dagfleet:dev}"
AIRFLOW_IMAGE="${AIRFLOW_IMAGE:-apache/airflow:${AIRFLOW_VERSION}}"
BASE_IMAGE="${BASE_IMAGE:-dagfleet-base:airflow-${AIRFLOW_VERSION}}"

log() { printf 'image: %s\n' "$*" >&2; }

version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)"
tags=("${IMAGE}")
if [ "${IMAGE}" = "dagfleet:dev" ]; then
  tags+=("dagfleet:${version}")
fi
if [ -n "${PRINT_TAGS:-}" ]; then
  printf '%s\n' "${tags[@]}"
  exit 0
fi

docker info >/dev/null 2>&1 || { log "error: no Docker engine (as root: bash .ci/docker.sh)"; exit 1; }

if [ "${AIRFLOW_IMAGE}" = "${BASE_IMAGE}" ]; then
  BASE_IMAGE="${BASE_IMAGE}" "${ROOT}/docker/base/build.sh"
elif docker image inspect "${AIRFLOW_IMAGE}" >/dev/null 2>&1; then
  log "base ${AIRFLOW_IMAGE} (local)"
elif docker pull -q "${AIRFLOW_IMAGE}" >/dev/null 2>&1; then
  log "base ${AIRFLOW_IMAGE} (pulled)"
else
  log "cannot pull ${AIRFLOW_IMAGE}: using the local stand-in ${BASE_IMAGE} (docker/base/build.sh)"
  BASE_IMAGE="${BASE_IMAGE}" "${ROOT}/docker/base/build.sh"
  AIRFLOW_IMAGE="${BASE_IMAGE}"
fi

revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain -- Dockerfile .dockerignore pyproject.toml requirements.lock entrypoint examples 2>/dev/null)" ]; then
  revision="${revision}-dirty"
fi

# The commit time, not the build time: an unchanged tree rebuilds to the same image (full cache hit).
created="$(TZ=UTC0 git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || true)"
created="${created:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"

start=${SECONDS}
log "building ${IMAGE} FROM ${AIRFLOW_IMAGE}"
# shellcheck disable=SC2086  # DOCKER_BUILD_ARGS is a list of words on purpose
docker build \
  --build-arg "AIRFLOW_IMAGE=${AIRFLOW_IMAGE}" \
  --build-arg "VERSION=${version}" \
  --build-arg "REVISION=${revision}" \
  --build-arg "CREATED=${created}" \
  ${DOCKER_BUILD_ARGS:-} \
  -t "${IMAGE}" .
for tag in "${tags[@]:1}"; do
  docker tag "${IMAGE}" "${tag}"
done

# Earlier builds of this project left untagged: drop them (only ours, by label).
docker image prune -f --filter "label=org.opencontainers.image.title=dagfleet" >/dev/null || true

size() { docker image inspect -f '{{ .Size }}' "$1"; }
total=$(size "${IMAGE}")
base=$(size "${AIRFLOW_IMAGE}")
log "built ${tags[*]} in $(( SECONDS - start )) s: $(( total / 1000000 )) MB," \
  "$(( (total - base) / 1000000 )) MB on top of ${AIRFLOW_IMAGE}"
