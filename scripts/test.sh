#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest against real services.
# Called by `make test` (after the virtualenv is installed) and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# PostgreSQL on 127.0.0.1:5432 is needed by the Postgres half of the store tests.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "PostgreSQL is not answering on 127.0.0.1:5432; trying to start it" >&2
    if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        echo "error: PostgreSQL is required for the tests (127.0.0.1:5432, user postgres, trust auth)." >&2
        echo "       Install it (Debian: apt-get install postgresql) and start it, then rerun." >&2
        exit 1
    fi
fi

# redis-server (with its --sentinel mode) runs the multi-pod and failover tests on free ports.
if ! command -v redis-server >/dev/null; then
    echo "redis-server is missing; installing Debian's redis-server package" >&2
    if command -v apt-get >/dev/null; then
        (apt-get install -y -q redis-server >/dev/null 2>&1 || \
            (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1)) || true
    fi
    if ! command -v redis-server >/dev/null; then
        echo "error: the tests need redis-server (Debian: apt-get install redis-server)." >&2
        exit 1
    fi
fi

# promtool checks monitoring/: the Prometheus config, the alert rules and their unit tests.
# RUNLEVEL=1 (and policy-rc.d, where present) stop the package from starting a Prometheus
# server; one started by systemd anyway would be harmless, the tests only use promtool.
if ! command -v promtool >/dev/null; then
    echo "promtool is missing; installing Debian's prometheus package" >&2
    if command -v apt-get >/dev/null; then
        install_prometheus() {
            RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1
        }
        (install_prometheus || (apt-get update -q >/dev/null 2>&1 && install_prometheus)) || true
    fi
    if ! promtool --version >/dev/null 2>&1; then
        echo "error: the monitoring tests need promtool (Debian: apt-get install prometheus)." >&2
        exit 1
    fi
fi

# docker-compose and nginx check the deployment files (`docker-compose config`, `nginx -t`);
# neither needs a Docker engine or a running nginx. --no-install-recommends keeps Debian's
# docker-compose from pulling in the Docker engine; RUNLEVEL=1 keeps nginx from starting.
for tool in docker-compose nginx; do
    if ! command -v "$tool" >/dev/null; then
        echo "$tool is missing; installing Debian's $tool package" >&2
        if command -v apt-get >/dev/null; then
            install_tool() {
                RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y -q --no-install-recommends "$tool" >/dev/null 2>&1
            }
            (install_tool || (apt-get update -q >/dev/null 2>&1 && install_tool)) || true
        fi
        if ! command -v "$tool" >/dev/null; then
            echo "error: the deployment tests need $tool (Debian: apt-get install $tool)." >&2
            exit 1
        fi
    fi
done

# kubernetes-validate (the dev extra) checks k8s/; an older virtualenv may lack it.
if [ ! -x "$BIN/kubernetes-validate" ]; then
    echo "kubernetes-validate is missing; installing the dev extra" >&2
    if ! $BIN/python -m pip install --quiet -e '.[dev]' || [ ! -x "$BIN/kubernetes-validate" ]; then
        echo "error: the deployment tests need kubernetes-validate (pip install -e '.[dev]')." >&2
        exit 1
    fi
fi

# Debian's Chromium runs the chat UI's end-to-end tests (tests/frontend/); never a downloaded browser.
if ! command -v chromium >/dev/null; then
    echo "chromium is missing; installing Debian's chromium package" >&2
    if command -v apt-get >/dev/null; then
        install_chromium() {
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
                >/dev/null 2>&1
        }
        (install_chromium || (apt-get update -q >/dev/null 2>&1 && install_chromium)) || true
    fi
    if ! command -v chromium >/dev/null; then
        echo "error: the UI tests need Chromium (Debian: apt-get install chromium)." >&2
        exit 1
    fi
fi

echo "== ruff"
$BIN/ruff check .
$BIN/ruff format --check .
echo "== mypy"
$BIN/mypy
echo "== import layers"
$BIN/lint-imports
# The chat UI: typecheck, unit tests, build and bundle budget; the build serves the e2e tests.
bash scripts/ui.sh check
echo "== pytest"
set +e
$BIN/pytest -q "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
