#!/usr/bin/env bash
# /entrypoint of the local stand-in for apache/airflow (docker/base/build.sh).
# It keeps the parts of the official entrypoint's contract that dagfleet relies on:
#   * umask 0002 and a passwd entry for an arbitrary UID (OpenShift-style runs, gid 0),
#   * a non-empty `_AIRFLOW_DB_MIGRATE` (or the older `_AIRFLOW_DB_UPGRADE`) runs `airflow db migrate` first,
#   * `bash ARGS` / `python ARGS` are exec'd as given, `airflow ARGS` and anything else is
#     handed to `airflow` (so `/entrypoint scheduler` runs `airflow scheduler`),
#   * no arguments runs `airflow` (its help), like the official CMD [].
# Not mimicked: waiting for a database/broker, _AIRFLOW_WWW_USER_CREATE, _PIP_ADDITIONAL_REQUIREMENTS.
set -euo pipefail

umask 0002

if ! whoami >/dev/null 2>&1 && [ -w /etc/passwd ]; then
  echo "${USER_NAME:-default}:x:$(id -u):0:${USER_NAME:-default} user:${AIRFLOW_USER_HOME_DIR:-/home/airflow}:/sbin/nologin" >>/etc/passwd
  export HOME="${AIRFLOW_USER_HOME_DIR:-/home/airflow}"
fi

# Like the official one: any non-empty value migrates, before the command is looked at.
if [ -n "${_AIRFLOW_DB_MIGRATE:-}" ] || [ -n "${_AIRFLOW_DB_UPGRADE:-}" ]; then
  echo "stand-in /entrypoint: running airflow db migrate" >&2
  airflow db migrate
fi

case "${1:-}" in
  bash) shift; exec /bin/bash "$@" ;;
  python) shift; exec python "$@" ;;
  airflow) shift ;;
esac

exec airflow "$@"
