#!/usr/bin/env bash
# /entrypoint of the local stand-in for apache/airflow (docker/base/build.sh), written from the
# official image's documentation (docker-stack docs, "Entrypoint") so that tests see what a
# production container sees. In the order the documentation describes:
#   1. Arbitrary UID: a UID without a passwd entry gets one (home /home/airflow) when its group is
#      0; any other group is refused with an error (the documented OpenShift rule). umask 0002.
#   2. Database wait, before ANY command (bash and python included): `airflow db check`, tried
#      CONNECTION_CHECK_MAX_COUNT times (default 20), CONNECTION_CHECK_SLEEP_TIME seconds apart
#      (default 3); CONNECTION_CHECK_MAX_COUNT=0 skips it. Exhausted tries exit 1.
#   3. `_AIRFLOW_DB_MIGRATE` (or the older `_AIRFLOW_DB_UPGRADE`) non-empty: `airflow db migrate`.
#   4. `_AIRFLOW_WWW_USER_CREATE` non-empty: create a user (FAB `airflow users create`); needs
#      `_AIRFLOW_WWW_USER_PASSWORD` or `_AIRFLOW_WWW_USER_PASSWORD_CMD`; a failed creation is not fatal.
#   5. Command dispatch: `bash ARGS` / `python ARGS` exec'd as given; `airflow ARGS` and any other
#      first word are handed to `airflow`; no arguments runs `airflow` (its help), as CMD [] does.
#   6. Celery broker wait for `scheduler` and `celery` commands with the CeleryExecutor: a TCP
#      connect to the broker's host/port (amqp 5672, redis 6379, postgres 5432, mysql 3306 by
#      default), with the same count/sleep/skip switches as the database wait.
# Not mimicked (dagfleet relies on neither): _PIP_ADDITIONAL_REQUIREMENTS (a test-only feature
# that installs packages at start) and the PYTHONPATH tweaks for root.
AIRFLOW_COMMAND="${1:-}"
set -euo pipefail

CONNECTION_CHECK_MAX_COUNT="${CONNECTION_CHECK_MAX_COUNT:-20}"
CONNECTION_CHECK_SLEEP_TIME="${CONNECTION_CHECK_SLEEP_TIME:-3}"

say() { printf 'entrypoint: %s\n' "$*" >&2; }

check_uid() {
  if whoami >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -g)" != "0" ]; then
    say "error: running as uid $(id -u) with gid $(id -g): an arbitrary user must run with group 0 (e.g. --user $(id -u):0)"
    exit 1
  fi
  if [ -w /etc/passwd ]; then
    echo "${USER_NAME:-default}:x:$(id -u):0:${USER_NAME:-default} user:${AIRFLOW_USER_HOME_DIR:-/home/airflow}:/sbin/nologin" >>/etc/passwd
  fi
  export HOME="${AIRFLOW_USER_HOME_DIR:-/home/airflow}"
}

# run_check_with_retries WHAT COMMAND...: COMMAND until it succeeds, at most MAX_COUNT times.
run_check_with_retries() {
  local what="$1" attempt=1 output
  shift
  while true; do
    if output="$("$@" 2>&1)"; then
      return 0
    fi
    if [ "${attempt}" -ge "${CONNECTION_CHECK_MAX_COUNT}" ]; then
      say "error: ${what} not reachable after ${attempt} tries, ${CONNECTION_CHECK_SLEEP_TIME}s apart:"
      printf '%s\n' "${output}" | tail -n 5 >&2
      exit 1
    fi
    say "waiting for ${what} (try ${attempt}/${CONNECTION_CHECK_MAX_COUNT}, next in ${CONNECTION_CHECK_SLEEP_TIME}s)"
    attempt=$((attempt + 1))
    sleep "${CONNECTION_CHECK_SLEEP_TIME}"
  done
}

wait_for_airflow_db() {
  run_check_with_retries "the metadata database" airflow db check
}

tcp_open() { timeout 5 bash -c ": </dev/tcp/$1/$2" 2>/dev/null; }

wait_for_celery_broker() {
  local url="${AIRFLOW__CELERY__BROKER_URL:-}"
  if [ -z "${url}" ] && [ -n "${AIRFLOW__CELERY__BROKER_URL_CMD:-}" ]; then
    url="$(eval "${AIRFLOW__CELERY__BROKER_URL_CMD}")"
  fi
  if [ -z "${url}" ]; then
    url="$(airflow config get-value celery broker_url 2>/dev/null || true)"
  fi
  [ -n "${url}" ] || return 0
  local scheme="${url%%://*}" rest="${url#*://}" default_port
  case "${scheme}" in
    amqp | amqps | pyamqp) default_port=5672 ;;
    redis | rediss) default_port=6379 ;;
    postgres | postgresql | db+postgresql) default_port=5432 ;;
    mysql | db+mysql) default_port=3306 ;;
    *) say "unknown broker scheme ${scheme}: not waiting for it"; return 0 ;;
  esac
  rest="${rest##*@}"   # drop user:password@ (never printed)
  rest="${rest%%/*}"   # drop /db and query
  rest="${rest%%\?*}"
  local host="${rest%%:*}" port="${default_port}"
  if [ "${rest}" != "${host}" ]; then
    port="${rest#*:}"
  fi
  run_check_with_retries "the Celery broker (${scheme}://${host}:${port})" tcp_open "${host}" "${port}"
}

create_www_user() {
  local password="${_AIRFLOW_WWW_USER_PASSWORD:-}"
  if [ -n "${_AIRFLOW_WWW_USER_PASSWORD_CMD:-}" ]; then
    password="$(eval "${_AIRFLOW_WWW_USER_PASSWORD_CMD}")"
  fi
  if [ -z "${password}" ]; then
    say "error: _AIRFLOW_WWW_USER_CREATE needs _AIRFLOW_WWW_USER_PASSWORD or _AIRFLOW_WWW_USER_PASSWORD_CMD"
    exit 1
  fi
  airflow users create \
    --username "${_AIRFLOW_WWW_USER_USERNAME:-admin}" \
    --firstname "${_AIRFLOW_WWW_USER_FIRSTNAME:-Airflow}" \
    --lastname "${_AIRFLOW_WWW_USER_LASTNAME:-Admin}" \
    --email "${_AIRFLOW_WWW_USER_EMAIL:-airflowadmin@example.com}" \
    --role "${_AIRFLOW_WWW_USER_ROLE:-Admin}" \
    --password "${password}" || true
}

check_uid
umask 0002

if [ "${CONNECTION_CHECK_MAX_COUNT}" -gt 0 ]; then
  wait_for_airflow_db
fi

if [ -n "${_AIRFLOW_DB_MIGRATE:-}" ] || [ -n "${_AIRFLOW_DB_UPGRADE:-}" ]; then
  say "running airflow db migrate"
  airflow db migrate
fi

if [ -n "${_AIRFLOW_WWW_USER_CREATE:-}" ]; then
  create_www_user
fi

# bash and python come after the database check, as in the official image.
case "${AIRFLOW_COMMAND}" in
  bash) shift; exec /bin/bash "$@" ;;
  python) shift; exec python "$@" ;;
  airflow) AIRFLOW_COMMAND="${2:-}"; shift ;;
esac

if [[ "${AIRFLOW_COMMAND}" =~ ^(scheduler|celery)$ ]] && [ "${CONNECTION_CHECK_MAX_COUNT}" -gt 0 ] \
  && [[ "${AIRFLOW__CORE__EXECUTOR:-}" == *CeleryExecutor* ]]; then
  wait_for_celery_broker
fi

exec airflow "$@"
