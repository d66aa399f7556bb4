"""The registry is the one list of controls: every control module is in it, and each one is complete."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import shared.controls
from shared.controls.base import Control
from shared.controls.registry import BY_ID, CONTROLS, IMPLEMENTED_CONTROLS, REVERTIBLE_CONTROLS, UNATTENDED_CONTROLS
from shared.runtime.telemetry import run_measurements

MODULES = [info.name for info in pkgutil.iter_modules(shared.controls.__path__)]


def control_modules() -> dict[str, Control]:
    found = {}
    for name in MODULES:
        module = importlib.import_module(f"shared.controls.{name}")
        if isinstance(getattr(module, "CONTROL", None), Control):
            found[name] = module.CONTROL
    return found


def test_every_control_module_is_registered_under_its_own_name():
    modules = control_modules()
    assert modules, "no control modules found"
    assert {control.id for control in modules.values()} == set(IMPLEMENTED_CONTROLS), (
        "a module defines CONTROL but is missing from shared/controls/registry.py (or the reverse)"
    )
    for name, control in modules.items():
        assert name == control.id.replace("-", "_"), f"{control.id} must live in shared/controls/{name}.py"


def test_ids_are_unique_and_in_report_order():
    assert len(BY_ID) == len(CONTROLS)
    assert IMPLEMENTED_CONTROLS == (
        "org-audit-enabled",
        "audit-log-search",
        "audit-bypass",
        "mailbox-audit-actions",
        "mailbox-audit-retention",
        "audit-retention-policy",
        "audit-pipeline",
    )


@pytest.mark.parametrize("control", CONTROLS, ids=lambda control: control.id)
def test_each_control_carries_its_catalogue_entry_and_wording(control):
    for text in (control.title, control.question, control.expected, control.remediation):
        assert text.strip()
    assert {"CIS-v7", "CIS-v4", "ISO27001-2022", "NIS2", "AVG"} <= set(control.frameworks)
    assert control.wording.note, "the evidence report explains every control"
    columns = control.wording.finding_columns
    assert not control.wording.table_widths or len(control.wording.table_widths) == len(columns)


def test_unattended_and_revertible_sets_say_what_a_person_must_decide():
    # Removing a bypass or freezing DefaultAuditSet is for a person; switching auditing off is a revert.
    assert set(UNATTENDED_CONTROLS) == {"org-audit-enabled", "audit-log-search", "mailbox-audit-retention"}
    assert set(REVERTIBLE_CONTROLS) == {"org-audit-enabled", "audit-log-search"}


def test_an_error_verdict_keeps_the_controls_expected_value():
    result = BY_ID["audit-bypass"].error("HTTP 503")
    assert (result.status, result.expected, result.actual) == ("Error", BY_ID["audit-bypass"].expected, "unreadable")
    assert "compliance is unknown: HTTP 503" in result.message


def test_run_measurements_come_from_the_controls_details():
    from shared.model import ControlResult, RunReport, Status

    report = RunReport(command="check", tenant_id="t")
    report.controls = [
        ControlResult("audit-bypass", Status.NON_COMPLIANT, "", "", "", {"bypass_enabled": 3}),
        ControlResult(
            "mailbox-audit-retention", Status.COMPLIANT, "", "", "", {"user_mailboxes": 7, "shared_mailboxes": 2}
        ),
        ControlResult(
            "mailbox-audit-actions",
            Status.NON_COMPLIANT,
            "",
            "",
            "",
            {"user_mailboxes": 7, "shared_mailboxes": 2, "mailboxes_noncompliant": 4},
        ),
    ]
    assert run_measurements(report) == {
        "bypass_entries_enabled": 3,
        "mailboxes_scanned": 9,
        "mailboxes_noncompliant": 4,
    }
