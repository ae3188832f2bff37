# dagfleet: Apache Airflow with one generated DAG per workflow of a config API.
#
# Extends the official Airflow image the way its documentation recommends: pip install as the
# airflow user, with Airflow pinned next to the project's hash-locked requirements so pip cannot
# move it. Build with `make image` (falls back to a local stand-in base when no registry is
# reachable) or plainly: docker build -t dagfleet:dev .
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2

# --- the dagfleet wheel (templates and example workflows are inside it) ------------------------
FROM ${AIRFLOW_IMAGE} AS wheel
WORKDIR /tmp/src
COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root examples/ examples/
COPY --chown=airflow:root entrypoint/ entrypoint/
COPY --chown=airflow:root dags/ dags/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/dist .

# --- the image -------------------------------------------------------------------------------
FROM ${AIRFLOW_IMAGE}

# Pinned dependencies first: this layer only changes with requirements.lock. Packages the base
# already has at the locked version are left alone; `apache-airflow==` fails the build when the
# base image's Airflow is not the locked one.
COPY --chown=airflow:root requirements.lock /opt/dagfleet/requirements.lock
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/dagfleet/requirements.lock

COPY --chown=airflow:root --from=wheel /tmp/dist/ /tmp/dist/
RUN pip install --no-cache-dir --no-deps /tmp/dist/dagfleet-*.whl \
    && pip check \
    && rm -rf /tmp/dist

COPY --chown=airflow:root examples/ /opt/dagfleet/examples/

# Generated DAGs go to $AIRFLOW_HOME/dags; group-writable for arbitrary-UID platforms (gid 0).
# $AIRFLOW_HOME/airflow.cfg carries dagfleet's dag-processor settings (dagfleet.service.dagprocessor, issue #15;
# docs/parsing.md): a file rather than ENV so that AIRFLOW__* variables, the chart's own
# airflow.cfg (AIRFLOW_CONFIG) or a mounted airflow.cfg still override it.
RUN mkdir -p "${AIRFLOW_HOME}/dags" "${AIRFLOW_HOME}/logs" \
    && python -c "from dagfleet.service.dagprocessor import airflow_cfg; print(airflow_cfg(), end='')" > "${AIRFLOW_HOME}/airflow.cfg" \
    && chmod -R g+rwX "${AIRFLOW_HOME}"

ENV AIRFLOW__CORE__LOAD_EXAMPLES=False

USER 50000
WORKDIR /opt/airflow
EXPOSE 8080

# dumb-init forwards signals to the whole process group; `dagfleet run` syncs the DAGs once,
# then execs the official /entrypoint with the command (an Airflow component by default).
ENTRYPOINT ["/usr/bin/dumb-init", "--", "dagfleet", "run", "--"]
CMD ["standalone"]

# Labels last, fed by late ARGs, so a new revision does not bust the layers above.
ARG AIRFLOW_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="dagfleet" \
      org.opencontainers.image.description="Apache Airflow with one generated DAG per workflow of a config API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/dagfleet/dagfleet" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${AIRFLOW_IMAGE}"
