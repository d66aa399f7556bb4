"""Paths, the Bicep parser and the pinned offline validators for the infrastructure tests (the parsed files are
the `bicep` fixture in tests/support/fixtures.py).

The validators live outside the main venv (tools/install-infra-tools.sh). When one is missing the tests FAIL,
never skip: a green run must mean the infrastructure was really validated.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

try:
    from pycep import BicepParser
except ImportError as error:  # pragma: no cover - a setup problem, reported as a failure, never a skip
    raise ImportError("pycep-parser is missing from the venv: pip install -r requirements-dev.txt") from error

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CHECKOV = REPO / ".tools" / "checkov-venv" / "bin" / "checkov"
KQL_CHECK = REPO / "tools" / "kql_check.js"
KUSTO_PACKAGE = REPO / "tools" / "node_modules" / "@kusto" / "language-service-next" / "package.json"
INSTALL_HINT = "run tools/install-infra-tools.sh (installs the pinned checkov and Kusto language service)"

BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
ALERT_QUERIES = sorted((INFRA / "alerts").glob("*.kql"))
WORKBOOK_QUERIES = sorted((INFRA / "workbook").glob("*.kql"))
ALL_QUERIES = ALERT_QUERIES + WORKBOOK_QUERIES


@functools.cache
def _parser() -> BicepParser:
    return BicepParser()  # builds the grammar (~0.4 s): once per session


def parse_bicep(path: Path) -> dict[str, Any]:
    return _parser().parse(file_path=path)


def body(resource_or_module: dict[str, Any]) -> dict[str, Any]:
    """The declared body, unwrapping a conditional (`= if (...) {...}`) resource."""
    config = resource_or_module["config"]
    return config["config"] if "condition" in config and "config" in config else config


def require_checkov() -> Path:
    if not CHECKOV.is_file():
        pytest.fail(f"checkov not found at {CHECKOV.relative_to(REPO)}: {INSTALL_HINT}", pytrace=False)
    return CHECKOV


def require_kusto() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node (20 or newer) is not on PATH: install Node.js, then {INSTALL_HINT}", pytrace=False)
    if not KUSTO_PACKAGE.is_file():
        pytest.fail(f"@kusto/language-service-next not found under tools/node_modules: {INSTALL_HINT}", pytrace=False)
    return node


@dataclass(frozen=True)
class KqlResult:
    file: str
    errors: int
    diagnostics: list[dict[str, Any]]


def kql_check(*files: Path) -> tuple[int, dict[str, KqlResult]]:
    """Run tools/kql_check.js on the files; (exit code, result per file path as given)."""
    node = require_kusto()
    run = subprocess.run(
        [node, str(KQL_CHECK), *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )
    if run.returncode not in (0, 1):
        pytest.fail(f"kql_check.js exited {run.returncode}: {run.stderr.strip()}", pytrace=False)
    results = [KqlResult(**json.loads(line)) for line in run.stdout.splitlines() if line.strip()]
    return run.returncode, {result.file: result for result in results}


def ref(expression: Any) -> Any:
    """Render a pycep reference such as `identity.outputs.principalId` back to its Bicep text; anything else as is.

    pycep gives a bare identifier (a parameter, variable or resource) as a plain string, like a literal."""
    if isinstance(expression, dict) and expression.get("operator", {}).get("type") == "property_accessor":
        operands = expression["operator"]["operands"]
        return f"{ref(operands['operand_1'])}.{ref(operands['operand_2'])}"
    return expression


def loaded_file(expression: Any) -> str | None:
    """The path of a `loadTextContent('...')` expression, else None."""
    if isinstance(expression, dict):
        function = expression.get("function", {})
        if function.get("type") == "load_text_content":
            return function["parameters"]["file_path"]
    return None


def walk(node: Any, key: str | None = None):
    """Yield (key, value) for every dict entry in a parsed tree, depth first."""
    if isinstance(node, dict):
        for child_key, value in node.items():
            yield child_key, value
            yield from walk(value, child_key)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)
