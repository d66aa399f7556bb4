"""Fault injection on the wire: canned errors, broken connections, hostile nextLinks, writes that do not stick."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from emulator import Emulator, Fault

from .support import TENANT_ID, Exo

PAGED = {"tenant_id": TENANT_ID, "generate_mailboxes": {"count": 25}}
SMALL_PAGES = {"Prefer": "odata.maxpagesize=10"}


def test_status_fault_fires_times_after_skipping_and_is_recorded(make_emulator):
    emu = make_emulator()
    exo = Exo(emu)
    fault = emu.add_fault(
        Fault("status", cmdlet="Get-OrganizationConfig", status=429, after=1, times=2, headers={"Retry-After": "2"})
    )
    statuses = [exo.post("Get-OrganizationConfig") for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 429, 429, 200]
    assert statuses[1].headers["Retry-After"] == "2" and statuses[1].json()["error"]["code"] == "TooManyRequests"
    assert exo.post("Get-AdminAuditLogConfig").status_code == 200  # other cmdlets unaffected
    assert (fault.matched, fault.fired) == (4, 2)
    assert [(f.kind, f.cmdlet, f.page) for f in emu.fired_faults] == [("status", "Get-OrganizationConfig", 1)] * 2
    assert [r.status for r in emu.invocations("Get-OrganizationConfig")] == [200, 429, 429, 200]


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("nul", lambda r: r.content == b"\x00" * 16),
        ("html", lambda r: r.headers["Content-Type"].startswith("text/html")),
        ("empty", lambda r: r.content == b""),
        ("truncated_json", lambda r: r.text.startswith('{"error"') and not r.text.endswith("}")),
        ("garbage", lambda r: b"garbage" in r.content),
        ("concurrency", lambda r: r.text.startswith("You have reached the maximum number of concurrent requests")),
    ],
)
def test_status_fault_bodies(make_emulator, body, check):
    emu = make_emulator()
    emu.add_fault(Fault("status", status=503, body=body))
    answer = Exo(emu).post("Get-OrganizationConfig")
    assert answer.status_code == 503 and check(answer)


def test_fault_on_a_given_page_and_expired_cursor(make_emulator):
    emu = make_emulator(PAGED)
    exo = Exo(emu)
    emu.add_fault(Fault("status", cmdlet="Get-Mailbox", page=2, status=503))
    first = exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, headers=SMALL_PAGES)
    link = first["@odata.nextLink"]
    assert exo.post("Get-Mailbox", {"ResultSize": "Unlimited"}, url=link, headers=SMALL_PAGES).status_code == 503
    assert exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, url=link, headers=SMALL_PAGES)["value"]  # retry ok
    emu.add_fault(Fault("expire_cursor", cmdlet="Get-Mailbox"))
    expired = exo.post("Get-Mailbox", {"ResultSize": "Unlimited"}, url=link, headers=SMALL_PAGES)
    assert expired.status_code == 400 and "Expired or Invalid pagination request" in exo.error_text(expired)
    gone = exo.post("Get-Mailbox", {"ResultSize": "Unlimited"}, url=link, headers=SMALL_PAGES)
    assert gone.status_code == 400  # the cursor is really gone: the client must restart the query


def test_foreign_and_loop_next_links(make_emulator):
    emu = make_emulator(PAGED)
    exo = Exo(emu)
    emu.add_fault(Fault("foreign_next_link", cmdlet="Get-Mailbox"))
    link = exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, headers=SMALL_PAGES)["@odata.nextLink"]
    assert link.startswith(emu.foreign_url + "/adminapi/beta/")
    assert emu.foreign_requests == []
    requests.post(link, json={}, verify=emu.ca_bundle, timeout=10)  # what a careless client would do
    [leaked] = emu.foreign_requests
    assert leaked.listener == "foreign" and leaked.query["$skiptoken"]
    emu.add_fault(Fault("loop_next_link", cmdlet="Get-Mailbox", page=2))
    second_link = exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, headers=SMALL_PAGES)["@odata.nextLink"]
    looped = exo.ok("Get-Mailbox", {"ResultSize": "Unlimited"}, url=second_link, headers=SMALL_PAGES)
    assert looped["@odata.nextLink"] == second_link


def test_ignore_writes_answers_200_and_changes_nothing(make_emulator):
    emu = make_emulator({"tenant_id": TENANT_ID, "organization_config": {"AuditDisabled": True}})
    emu.add_fault(Fault("ignore_writes", cmdlet="Set-OrganizationConfig", times=-1))
    page = Exo(emu).ok("Set-OrganizationConfig", {"AuditDisabled": False})
    assert page["value"] == [] and page["@adminapi.warnings"] == []
    assert emu.tenant.organization_config["AuditDisabled"] is True
    assert [w.status for w in emu.writes()] == [200]


def test_stale_reads_answer_the_old_value_for_the_next_reads_after_a_write(make_emulator):
    emu = make_emulator({"tenant_id": TENANT_ID, "organization_config": {"AuditDisabled": True}})
    emu.add_fault(Fault("stale_reads", cmdlet="Set-OrganizationConfig", reads=2))
    exo = Exo(emu)
    exo.ok("Set-OrganizationConfig", {"AuditDisabled": False})
    assert emu.tenant.organization_config["AuditDisabled"] is False  # the write stuck
    seen = [exo.ok("Get-OrganizationConfig")["value"][0]["AuditDisabled"] for _ in range(3)]
    assert seen == [True, True, False]
    exo.ok("Set-OrganizationConfig", {"AuditDisabled": True})  # times=1: the next write is read back at once
    assert exo.ok("Get-OrganizationConfig")["value"][0]["AuditDisabled"] is True
    assert [f.kind for f in emu.fired_faults] == ["stale_reads"]


def test_stale_reads_can_answer_not_found_and_cover_paged_reads(make_emulator):
    emu = make_emulator({"tenant_id": TENANT_ID, "mailboxes": [{"Name": "ann", "AuditLogAgeLimit": "30.00:00:00"}]})
    emu.add_fault(Fault("stale_reads", cmdlet="Set-Mailbox", reads=1, not_found=True))
    emu.add_fault(Fault("stale_reads", cmdlet="Set-Mailbox", reads=1))  # fires on the next write
    exo = Exo(emu)
    exo.ok("Set-Mailbox", {"Identity": "ann", "AuditLogAgeLimit": "90.00:00:00"})
    missing = exo.post("Get-Mailbox", {"Identity": "ann"})
    assert missing.status_code == 404 and "couldn't be found" in exo.error_text(missing)
    assert exo.ok("Get-Mailbox")["value"][0]["AuditLogAgeLimit"] == "90.00:00:00"
    exo.ok("Set-Mailbox", {"Identity": "ann", "AuditLogAgeLimit": "180.00:00:00"})  # the second fault's write
    assert exo.ok("Get-Mailbox")["value"][0]["AuditLogAgeLimit"] == "90.00:00:00"  # stale: the old value
    assert exo.ok("Get-Mailbox")["value"][0]["AuditLogAgeLimit"] == "180.00:00:00"


def test_reset_breaks_the_body_and_delay_waits(make_emulator):
    emu = make_emulator()
    exo = Exo(emu)
    emu.add_fault(Fault("reset", cmdlet="Get-OrganizationConfig"))
    with pytest.raises(requests.exceptions.RequestException):
        exo.post("Get-OrganizationConfig")
    emu.add_fault(
        Fault(
            "delay",
            cmdlet="Get-OrganizationConfig",
            seconds=0.3,
            then={"kind": "status", "status": 502, "body": "html"},
        )
    )
    started = time.monotonic()
    assert exo.post("Get-OrganizationConfig").status_code == 502 and time.monotonic() - started >= 0.3
    assert exo.post("Get-OrganizationConfig").status_code == 200
    assert [f.kind for f in emu.fired_faults] == ["reset", "delay"]


def test_a_hang_does_not_block_other_requests_or_stop():
    emu = Emulator().start()
    try:
        exo = Exo(emu)
        emu.add_fault(Fault("hang", cmdlet="Get-Mailbox", times=-1))
        outcome: list[BaseException] = []

        def stuck() -> None:
            try:
                Exo(emu, exo.token).post("Get-Mailbox", timeout=30)
            except requests.RequestException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=stuck)
        worker.start()
        time.sleep(0.2)
        concurrent = [
            threading.Thread(target=lambda: Exo(emu, exo.token).ok("Get-OrganizationConfig")) for _ in range(5)
        ]
        for thread in concurrent:
            thread.start()
        for thread in concurrent:
            thread.join(timeout=5)
        assert len(emu.invocations("Get-OrganizationConfig")) == 5
        assert all(r.status == 200 for r in emu.invocations("Get-OrganizationConfig"))
    finally:
        started = time.monotonic()
        emu.stop()
        assert time.monotonic() - started < 2
    worker.join(timeout=5)
    assert not worker.is_alive() and outcome  # the hung client saw its connection end
    [hung] = emu.invocations("Get-Mailbox")
    assert hung.status is None


def test_scenario_faults_are_loaded_from_dicts(make_emulator):
    emu = make_emulator(
        {"tenant_id": TENANT_ID, "faults": [{"kind": "status", "cmdlet": "Get-Mailbox", "status": 500, "times": -1}]}
    )
    exo = Exo(emu)
    assert exo.post("Get-Mailbox").status_code == 500
    assert exo.post("Get-Mailbox").status_code == 500
    emu.clear_faults()
    assert exo.post("Get-Mailbox").status_code == 200


def test_unknown_fault_kinds_and_listeners_are_refused():
    with pytest.raises(ValueError, match="kind"):
        Fault("explode")
    with pytest.raises(ValueError, match="listener"):
        Fault("status", listener="sharepoint")
