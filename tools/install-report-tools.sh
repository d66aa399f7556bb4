#!/usr/bin/env bash
# Installs the tools the evidence report tests (tests/report) need, outside the main venv. Idempotent: a second
# run with nothing changed only checks what is there.
#   tools/azurite/node_modules   Azurite (local Azure Blob and Table Storage), pinned by tools/azurite/package-lock.json
#   chromium                     headless screenshots of the HTML report (Debian's package; needs root)
# Needs Node 20 with npm. Reaches the npm registry and Debian's archive only.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

AZURITE_VERSION=3.35.0

command -v node >/dev/null || { echo "node (20 or newer) is required" >&2; exit 2; }
command -v npm >/dev/null || { echo "npm is required" >&2; exit 2; }

# Azurite: npm ci reinstalls from the lock file; skip it when the pinned copy is in place.
pkg=tools/azurite/node_modules/azurite/package.json
if [ "$(node -p "try { require('./$pkg').version } catch { '' }")" != "$AZURITE_VERSION" ] \
   || [ tools/azurite/package-lock.json -nt tools/azurite/node_modules/.package-lock.json ]; then
    npm ci --prefix tools/azurite --no-audit --no-fund --loglevel=error
fi
node -e "process.exit(require('./$pkg').version === '$AZURITE_VERSION' ? 0 : 1)" \
    || { echo "azurite is not $AZURITE_VERSION" >&2; exit 1; }

# Chromium from Debian (root in CI). The fonts make the screenshot readable rather than boxes.
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "chromium is missing: run this script as root, or: sudo apt-get install -y chromium fonts-dejavu-core" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-liberation >/dev/null
fi
chromium --version >/dev/null 2>&1 || { echo "chromium does not start: chromium --version failed" >&2; exit 1; }

echo "report tools ready in $(( $(date +%s) - start )) s: azurite $AZURITE_VERSION in tools/azurite/node_modules," \
     "$(chromium --version 2>/dev/null | head -n1)"
