#!/usr/bin/env bash
# Installs the pinned offline validators for tests/infra, outside the main venv. Idempotent: a second run
# with nothing changed only checks the versions.
#   .tools/checkov-venv   checkov (Bicep security checks) with pycep-parser, the whole tree pinned by
#                         tools/checkov-constraints.txt
#   tools/node_modules    @kusto/language-service-next (KQL analysis), from tools/package-lock.json
# Needs python3.11 (or PYTHON=...) and Node 20 with npm. Reaches PyPI and the npm registry only.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
PYCEP_VERSION=0.5.1
KUSTO_VERSION=12.4.1
PYTHON=${PYTHON:-python3.11}
VENV=.tools/checkov-venv

command -v "$PYTHON" >/dev/null || PYTHON=python3
command -v node >/dev/null || { echo "node (20 or newer) is required" >&2; exit 2; }
command -v npm >/dev/null || { echo "npm is required" >&2; exit 2; }

# checkov in its own venv: about 100 packages that must not mix with the app's pins.
if ! "$VENV/bin/python" -c "import sys; sys.exit(sys.version_info[:2] < (3, 9))" 2>/dev/null; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
versions() {
    "$VENV/bin/python" -c "from importlib.metadata import version as v; print(v('checkov'), v('pycep-parser'))" \
        2>/dev/null || true
}
if [ "$(versions)" != "$CHECKOV_VERSION $PYCEP_VERSION" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c tools/checkov-constraints.txt "checkov==$CHECKOV_VERSION" "pycep-parser==$PYCEP_VERSION"
fi
[ "$(versions)" = "$CHECKOV_VERSION $PYCEP_VERSION" ] || { echo "checkov/pycep-parser not at the pinned versions" >&2; exit 1; }
[ -x "$VENV/bin/checkov" ] || { echo "$VENV/bin/checkov is missing" >&2; exit 1; }

# Kusto language service: npm ci reinstalls from the lock file; skip it when the pinned copy is in place.
pkg=tools/node_modules/@kusto/language-service-next/package.json
if [ "$(node -p "try { require('./$pkg').version } catch { '' }")" != "$KUSTO_VERSION" ] \
   || [ tools/package-lock.json -nt tools/node_modules/.package-lock.json ]; then
    (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi
node -e "process.exit(require('./$pkg').version === '$KUSTO_VERSION' ? 0 : 1)" \
    || { echo "@kusto/language-service-next is not $KUSTO_VERSION" >&2; exit 1; }

echo "infra tools ready: checkov $CHECKOV_VERSION (pycep-parser $PYCEP_VERSION) in $VENV," \
     "@kusto/language-service-next $KUSTO_VERSION in tools/node_modules"
