#!/usr/bin/env bash
# The chat UI in frontend/: install its packages when needed, check it, build it.
#
#   scripts/ui.sh build      npm ci (when node_modules is missing or stale), then build dist/  (make ui)
#   scripts/ui.sh optional   the same when npm is installed; otherwise say so and succeed     (make run)
#   scripts/ui.sh check      npm ci when needed, typecheck, unit tests, build, bundle budget   (make test)
set -euo pipefail
cd "$(dirname "$0")/../frontend"
mode=${1:-build}
MIN_NODE=20

node_ok() {
    command -v node >/dev/null && command -v npm >/dev/null &&
        [ "$(node -p 'process.versions.node.split(".")[0]')" -ge "$MIN_NODE" ]
}

if ! node_ok; then
    if [ "$mode" = optional ]; then
        echo "Node.js $MIN_NODE+ with npm is not installed: serving without the chat UI (see README)." >&2
        exit 0
    fi
    if [ "$mode" = check ] && command -v apt-get >/dev/null; then
        echo "Node.js $MIN_NODE+ and npm are missing; installing Debian's nodejs and npm packages" >&2
        (apt-get install -y -q nodejs npm >/dev/null 2>&1 ||
            (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nodejs npm >/dev/null 2>&1)) || true
    fi
    if ! node_ok; then
        echo "error: the chat UI needs Node.js $MIN_NODE or newer with npm (found: $(node -v 2>/dev/null || echo none))." >&2
        echo "       Install them (Debian: apt-get install nodejs npm), then rerun." >&2
        exit 1
    fi
fi

# node_modules is stale when package-lock.json changed since the last npm ci.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.lock-hash 2>/dev/null)" != "$lock_hash" ]; then
    echo "== npm ci (frontend)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$lock_hash" >node_modules/.lock-hash
fi

if [ "$mode" = check ]; then
    echo "== tsc (frontend)"
    npm run --silent typecheck
    echo "== vitest (frontend)"
    npx vitest run --reporter=dot
fi
echo "== vite build (frontend)"
npx vite build --logLevel warn
if [ "$mode" = check ]; then
    echo "== bundle budget (frontend)"
    node scripts/check-size.mjs
fi
