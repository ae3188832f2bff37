#!/usr/bin/env bash
# Build the harness's PostgreSQL, Redis and PgBouncer images from Debian packages (no registry),
# like the stand-in base: the cached debootstrap root file system of docker/base/build.sh (or a
# fresh one), `apt-get install postgresql-15 redis-server pgbouncer` in a chroot, `docker import`.
# One image; the harness points the chart's postgresql.image / redis.image / pgbouncer.image at it.
#   * postgres: an entrypoint doing what the official image's does for the chart: initdb into
#     $PGDATA as the running user with POSTGRES_USER / POSTGRES_DB / POSTGRES_PASSWORD_FILE, then
#     `postgres` listening on every address with password (scram) auth for the network.
#   * redis: redis-server and redis-cli on PATH (the chart passes its own command).
#   * pgbouncer: /usr/sbin/pgbouncer on PATH (the chart passes its command and generated config).
# The image runs as uid 999 (the official images' users): user postgres is created with uid 999 first
# (the chart runs PgBouncer as its own securityContext user).
# Idempotent: a label holds the hash of this script; FORCE=1 rebuilds.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${HERE}/../.." && pwd)"
CACHE="${ROOT}/.cache/image-base"
TAG="${HARNESS_SERVICES_IMAGE:-dagfleet-harness-services:bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
log() { printf 'harness/services: %s\n' "$*" >&2; }

hash="$(cat "$0" | sha256sum | cut -c1-16)"
current="$(docker image inspect -f '{{ index .Config.Labels "io.dagfleet.harness.inputs" }}' "${TAG}" 2>/dev/null || true)"
if [ "${current}" = "${hash}" ] && [ "${FORCE:-0}" != 1 ]; then
  log "reusing ${TAG}"
  exit 0
fi
mkdir -p "${CACHE}"
WORK="$(mktemp -d "${CACHE}/harness.XXXXXX")"
R="${WORK}/rootfs"
cleanup() {
  if mountpoint -q "${R}/proc" 2>/dev/null; then umount -l "${R}/proc"; fi
  rm -rf --one-file-system "${WORK}"
}
trap cleanup EXIT
ROOTFS_TAR="$(ls "${CACHE}"/rootfs-bookworm-*.tar 2>/dev/null | head -n 1 || true)"
mkdir -p "${R}"
if [ -n "${ROOTFS_TAR}" ]; then
  log "root file system from $(basename "${ROOTFS_TAR}")"
  tar -C "${R}" --numeric-owner -xf "${ROOTFS_TAR}"
else
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  log "debootstrap bookworm"
  debootstrap --variant=minbase bookworm "${R}" "${DEBIAN_MIRROR}" >"${WORK}/debootstrap.log" 2>&1
fi
cp /etc/resolv.conf "${R}/etc/resolv.conf"
mount -t proc proc "${R}/proc"
chroot "${R}" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive /bin/bash -euo pipefail -c '
    groupadd --gid 999 postgres
    useradd --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql-15 redis-server pgbouncer >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/*
    mkdir -p /var/run/postgresql /data
    chown 999:999 /var/run/postgresql /data
  '
umount "${R}/proc"
: >"${R}/etc/resolv.conf"
cat >"${R}/usr/local/bin/docker-entrypoint.sh" <<'SCRIPT'
#!/bin/bash
# What the official postgres image's entrypoint does for the dagfleet chart, nothing more.
set -euo pipefail
export PATH="/usr/lib/postgresql/15/bin:${PATH}"
: "${PGDATA:=/var/lib/postgresql/data}"
if [ ! -s "${PGDATA}/PG_VERSION" ]; then
  mkdir -p "${PGDATA}" && chmod 700 "${PGDATA}"
  password="$(cat "${POSTGRES_PASSWORD_FILE}")"
  initdb --username="${POSTGRES_USER:-postgres}" --pwfile="${POSTGRES_PASSWORD_FILE}" --auth-local=trust \
    --auth-host=scram-sha-256 -D "${PGDATA}" >/dev/null
  echo "host all all all scram-sha-256" >>"${PGDATA}/pg_hba.conf"
  pg_ctl -D "${PGDATA}" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >/dev/null
  if [ "${POSTGRES_DB:-postgres}" != postgres ]; then
    createdb -h /var/run/postgresql -U "${POSTGRES_USER:-postgres}" "${POSTGRES_DB}"
  fi
  pg_ctl -D "${PGDATA}" -m fast -w stop >/dev/null
  unset password
fi
exec postgres -D "${PGDATA}" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql
SCRIPT
chmod 0755 "${R}/usr/local/bin/docker-entrypoint.sh"
ln -sf /usr/lib/postgresql/15/bin/pg_isready "${R}/usr/local/bin/pg_isready"
for tag in "${TAG}"; do
  tar -C "${R}" --numeric-owner -c . | docker import \
    -c "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8" \
    -c "USER 999" \
    -c 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
    -c "LABEL io.dagfleet.harness.inputs=${hash}" \
    - "${tag}" >/dev/null
done
log "built ${TAG}"
