#!/usr/bin/env bash
# Build a local stand-in for the official apache/airflow image, for machines that cannot reach a
# registry (CI here). It keeps the contract the project image relies on:
#   AIRFLOW_HOME=/opt/airflow, user airflow 50000:0 with home /home/airflow, a venv at
#   /home/airflow/.local (on PATH, with pip) holding Airflow and the cncf.kubernetes provider at
#   the versions of requirements.lock, ENV AIRFLOW_VERSION, /usr/bin/dumb-init and
#   ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"].
#
# Idempotent: the image carries a label with a hash of its inputs and is reused when that matches
# (FORCE=1 rebuilds). The debootstrap root file system and the uv download cache live under
# .cache/image-base/ so a rebuild does not download Debian or PyPI again. Needs root (debootstrap,
# chroot) and a running dockerd; installs debootstrap with apt-get when it is missing.
#
# Env: BASE_IMAGE (tag, default dagfleet-base:airflow-<version>), FORCE, DEBIAN_MIRROR, UV (the
#      pinned uv binary, default .tools/uv/bin/uv as `make` installs it),
#      CA_BUNDLE (CA file the chroot and the image trust, default the host's system bundle).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"
LOCK="${ROOT}/requirements.lock"
CACHE="${ROOT}/.cache/image-base"
SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-venv brings ensurepip (so the venv has pip, as in the official image); curl for health
# checks; procps for ps/pgrep when debugging.
PACKAGES="python3,python3-venv,dumb-init,ca-certificates,curl,procps"
CA_BUNDLE="${CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"

# shellcheck source=docker/lockpin.sh
. "${ROOT}/docker/lockpin.sh"
AIRFLOW_VERSION="$(pin apache-airflow)"
CNCF_VERSION="$(pin apache-airflow-providers-cncf-kubernetes)"
BASE_IMAGE="${BASE_IMAGE:-dagfleet-base:airflow-${AIRFLOW_VERSION}}"

log() { printf 'docker/base: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -n "${AIRFLOW_VERSION}" ] && [ -n "${CNCF_VERSION}" ] || die "airflow/cncf pins not found in ${LOCK}"
docker info >/dev/null 2>&1 || die "no Docker engine (run: bash .ci/docker.sh)"

mkdir -p "${CACHE}"
exec 9>"${CACHE}/.lock"
flock 9  # one build at a time per checkout

BASE_LOCK="${CACHE}/base.lock"
python3 "${HERE}/base_lock.py" "${LOCK}" apache-airflow apache-airflow-providers-cncf-kubernetes >"${BASE_LOCK}"

inputs_hash="$(
  { printf '%s\n' "${SUITE}" "${PACKAGES}"; cat "$0" "${HERE}/entrypoint.sh" "${BASE_LOCK}"; } \
    | sha256sum | cut -c1-16
)"
current="$(docker image inspect -f '{{ index .Config.Labels "io.dagfleet.base.inputs" }}' "${BASE_IMAGE}" 2>/dev/null || true)"
if [ "${current}" = "${inputs_hash}" ] && [ "${FORCE:-0}" != 1 ]; then
  log "reusing ${BASE_IMAGE} (inputs ${inputs_hash})"
  exit 0
fi
# The static uv binary is copied into the chroot: the project's pinned one only (`make image-base`
# installs it first; UV names it). A uv found on PATH is never used: nobody pinned its version.
UV="${UV:-${ROOT}/.tools/uv/bin/uv}"
if ! [ -x "${UV}" ] || [ "$(head -c 4 "${UV}" | tr -d '\0')" != $'\x7fELF' ]; then
  die "pinned uv binary not found at ${UV} (run: make image-base, which installs it into .tools/uv)"
fi
log "building ${BASE_IMAGE}: Airflow ${AIRFLOW_VERSION}, cncf.kubernetes ${CNCF_VERSION} (inputs ${inputs_hash})"
start=${SECONDS}

# 1. Debian root file system, cached as a tarball keyed by suite + packages.
rootfs_key="$(printf '%s\n' "${SUITE}" "${PACKAGES}" "${DEBIAN_MIRROR}" | sha256sum | cut -c1-12)"
ROOTFS_TAR="${CACHE}/rootfs-${SUITE}-${rootfs_key}.tar"
WORK="$(mktemp -d "${CACHE}/work.XXXXXX")"
R="${WORK}/rootfs"

cleanup() {
  if mountpoint -q "${R}/proc" 2>/dev/null; then umount -l "${R}/proc"; fi
  if mountpoint -q "${R}/tmp/uv-cache" 2>/dev/null; then umount -l "${R}/tmp/uv-cache"; fi
  # --one-file-system: never follow into anything still mounted.
  rm -rf --one-file-system "${WORK}"
}
trap cleanup EXIT

if [ ! -s "${ROOTFS_TAR}" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  fi
  log "debootstrap ${SUITE} (${PACKAGES})"
  mkdir -p "${CACHE}/debs"
  debootstrap --variant=minbase --include="${PACKAGES}" --cache-dir="${CACHE}/debs" \
    "${SUITE}" "${R}" "${DEBIAN_MIRROR}" >"${WORK}/debootstrap.log" 2>&1 \
    || { tail -n 30 "${WORK}/debootstrap.log" >&2; die "debootstrap failed"; }
  chroot "${R}" apt-get clean
  rm -rf "${R}"/var/lib/apt/lists/* "${R}"/var/cache/apt/*.bin "${R}"/var/log/*.log
  tar -C "${R}" --numeric-owner -cf "${ROOTFS_TAR}.tmp" .
  mv "${ROOTFS_TAR}.tmp" "${ROOTFS_TAR}"
else
  log "reusing cached root file system $(basename "${ROOTFS_TAR}")"
  mkdir -p "${R}"
  tar -C "${R}" --numeric-owner -xf "${ROOTFS_TAR}"
fi

# 2. Airflow in a venv, as the official image has it, from the hash-locked subset of the lock.
install -m 0755 "${UV}" "${R}/tmp/uv"
install -m 0644 "${BASE_LOCK}" "${R}/tmp/base.lock"
install -m 0755 "${HERE}/entrypoint.sh" "${R}/entrypoint"
# The image trusts the same CAs as this machine, so pip works in builds behind a TLS-inspecting
# proxy, like a corporate base image would.
install -m 0644 "${CA_BUNDLE}" "${R}/etc/ssl/certs/ca-certificates.crt"
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"${R}/etc/pip.conf"
cp /etc/resolv.conf "${R}/etc/resolv.conf"
mkdir -p "${CACHE}/uv-cache" "${R}/tmp/uv-cache"
mount --bind "${CACHE}/uv-cache" "${R}/tmp/uv-cache"
mount -t proc proc "${R}/proc"

chroot "${R}" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_CACHE_DIR=/tmp/uv-cache UV_LINK_MODE=copy \
  UV_NO_PROGRESS=1 /bin/bash -euo pipefail -c '
    useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash \
      --comment "" airflow
    python3 -m venv /home/airflow/.local
    /tmp/uv pip install --quiet --python /home/airflow/.local/bin/python --require-hashes \
      --no-deps --compile-bytecode -r /tmp/base.lock
    mkdir -p /opt/airflow/dags /opt/airflow/logs /opt/airflow/plugins /opt/airflow/config
    chown -R 50000:0 /opt/airflow /home/airflow
    chmod -R g+rwX /opt/airflow /home/airflow
    chmod g=u /etc/passwd
    /home/airflow/.local/bin/python -c "import airflow, airflow.providers.cncf.kubernetes"
  '

umount "${R}/proc" "${R}/tmp/uv-cache"
rm -rf "${R}/tmp/uv" "${R}/tmp/base.lock" "${R}/tmp/uv-cache" "${R}/root/.cache"
: >"${R}/etc/resolv.conf"

# 3. Import as an image with the official image's runtime settings.
log "importing into Docker as ${BASE_IMAGE}"
previous="$(docker image inspect -f '{{ .Id }}' "${BASE_IMAGE}" 2>/dev/null || true)"
tar -C "${R}" --numeric-owner -c . | docker import \
  -c "ENV PATH=/home/airflow/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  -c "ENV LANG=C.UTF-8 LC_ALL=C.UTF-8" \
  -c "ENV AIRFLOW_HOME=/opt/airflow AIRFLOW_USER_HOME_DIR=/home/airflow AIRFLOW_UID=50000" \
  -c "ENV AIRFLOW_VERSION=${AIRFLOW_VERSION}" \
  -c "USER 50000" \
  -c "WORKDIR /opt/airflow" \
  -c "EXPOSE 8080" \
  -c 'ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"]' \
  -c 'CMD []' \
  -c "LABEL io.dagfleet.base.inputs=${inputs_hash}" \
  -c "LABEL org.opencontainers.image.title=dagfleet-base" \
  -c "LABEL org.opencontainers.image.description=\"Local stand-in for apache/airflow:${AIRFLOW_VERSION}\"" \
  -c "LABEL org.opencontainers.image.version=${AIRFLOW_VERSION}" \
  - "${BASE_IMAGE}" >/dev/null

if [ -n "${previous}" ]; then
  docker rmi "${previous}" >/dev/null 2>&1 || true  # kept while images built on it exist
fi
size_mb=$(( $(docker image inspect -f '{{ .Size }}' "${BASE_IMAGE}") / 1000000 ))
log "built ${BASE_IMAGE} (${size_mb} MB) in $(( SECONDS - start )) s"
