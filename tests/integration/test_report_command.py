"""`python -m shared report`: the evidence report from the command line, in three formats."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_cli, spawn_cli


@pytest.mark.e2e
@pytest.mark.parametrize(("fmt", "marker"), [("json", '"schema_version"'), ("md", "| "), ("html", "<!DOCTYPE html>")])
def test_report_is_written_in_each_format_with_the_checks_exit_code(start_emulator, tmp_path, fmt, marker):
    emu = start_emulator("emulator/scenarios/noncompliant.json")
    out = tmp_path / f"evidence.{fmt}"
    result = spawn_cli(emu, "report", "--format", fmt, "--out", str(out))
    assert result.returncode == 1, result.stderr
    text = out.read_text(encoding="utf-8")
    assert marker in text
    assert "bob@contoso.com" in text  # the evidence report keeps real names; only telemetry pseudonymises
    if fmt == "json":
        assert json.loads(text)["status"] == "NonCompliant"


def test_an_unwritable_destination_is_an_error(start_emulator, tmp_path):
    emu = start_emulator()
    result = run_cli(emu, "report", "--format", "html", "--out", str(tmp_path / "missing" / "dir" / "x.html"))
    assert result.returncode == 2
    assert "--out" in result.stderr
