#!/usr/bin/env bash
# Install the real clients the test suite drives (t/api/13_clients.t): the
# official openai SDK and the Codex CLI, from the npm registry, at the
# versions pinned in t/clients/package-lock.json. Node.js and npm come from
# Debian's packages when the machine has none. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/t/clients

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "clients.sh: node and npm are missing (run as root to install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# reinstall only when the lock changed since the last install
stamp=$DIR/node_modules/.tokenbay-lock
if [ -f "$stamp" ] && cmp -s "$stamp" "$DIR/package-lock.json"; then
    exit 0
fi
echo "clients.sh: installing the test clients (npm ci in t/clients)"
(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
cp "$DIR/package-lock.json" "$stamp"
