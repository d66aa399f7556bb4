"""`make demo` keeps working: it runs scripts/demo.py, the main job against the emulated tenant, end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.cli import clean_env
from tests.support.tenant import REPO


@pytest.mark.e2e
def test_the_demo_fixes_the_tenant_then_catches_and_undoes_a_switch_off():
    result = subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Application Insights received" in out and "MailboxAuditCheckCompleted" in out
    assert "Overall: NonCompliant (exit code 1)" in out  # the tenant as it came
    assert "[high] audit-tampering" in out  # the switch-off by another identity, caught by the watch
    assert "Re-checked org-audit-enabled: Compliant" in out  # and undone by the re-check
    assert out.rstrip().count("Set-OrganizationConfig {'AuditDisabled': False}") == 2  # fixed twice, by us
    assert "Overall: Compliant (exit code 0)" in out.split("=== 9.")[1]
