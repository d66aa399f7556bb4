"""The admin API client against the emulated Exchange Online: headers, paging, errors, retries, token safety."""

from __future__ import annotations

import time
import uuid

import pytest

from emulator import Fault
from shared.exchange.client import AUDIT_LOG_ANCHOR_GUID, system_anchor
from shared.exchange.errors import (
    ExchangeAuthError,
    ExchangeBadRequest,
    ExchangeDeadlineExceeded,
    ExchangeNotFound,
    ExchangePermissionError,
    ExchangeProtocolError,
    PaginationExpired,
)
from tests.integration.helpers import RetryPolicy, bearer_tokens, client_for
from tests.support.tenant import TENANT_ID, scenario

MAILBOX_FIELDS = ("ExternalDirectoryObjectId", "UserPrincipalName", "AuditAdmin")


def many_mailboxes(count: int) -> dict:
    return scenario(generate_mailboxes={"count": count})


def test_request_carries_the_documented_headers_and_select(start_emulator, monkeypatch):
    emu = start_emulator()
    client = client_for(emu, monkeypatch)
    client.invoke("Get-OrganizationConfig", select=("Name", "AuditDisabled"))
    client.invoke("Get-OrganizationConfig")
    first, second = emu.invocations("Get-OrganizationConfig")
    headers = first.headers
    assert headers["authorization"].startswith("Bearer ")
    assert headers["x-anchormailbox"] == f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{TENANT_ID}"
    assert headers["prefer"] == "odata.maxpagesize=1000"
    assert headers["x-cmdletname"] == "Get-OrganizationConfig"
    assert headers["x-responseformat"] == "json"
    assert headers["content-type"].startswith("application/json")
    assert first.query["$select"] == "Name,AuditDisabled"
    assert first.body == {"CmdletInput": {"CmdletName": "Get-OrganizationConfig", "Parameters": {}}}
    assert uuid.UUID(headers["client-request-id"]) != uuid.UUID(second.headers["client-request-id"])
    assert first.headers["connection-id"] == second.headers["connection-id"]


def test_sidecars_are_stripped_and_values_kept(start_emulator, monkeypatch):
    emu = start_emulator(scenario(mailboxes=[{"UserPrincipalName": "ann@contoso.com"}]))
    rows = client_for(emu, monkeypatch).invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=MAILBOX_FIELDS).rows
    assert len(rows) == 1
    assert not [key for key in rows[0] if "@" in key]
    assert rows[0]["UserPrincipalName"] == "ann@contoso.com"
    assert isinstance(rows[0]["AuditAdmin"], list)


def test_paging_follows_next_links_with_the_same_body_and_anchor(start_emulator, monkeypatch):
    emu = start_emulator(many_mailboxes(2500))
    pages = list(client_for(emu, monkeypatch).pages("Get-Mailbox", {"ResultSize": "Unlimited"}, select=MAILBOX_FIELDS))
    assert [len(page.rows) for page in pages] == [1000, 1000, 500]
    ids = {row["ExternalDirectoryObjectId"] for page in pages for row in page.rows}
    assert len(ids) == 2500
    calls = emu.invocations("Get-Mailbox")
    assert len(calls) == 3
    assert all(call.body == calls[0].body for call in calls)
    assert {call.headers["x-anchormailbox"] for call in calls} == {calls[0].headers["x-anchormailbox"]}


def test_pages_arrive_as_a_stream_not_after_the_whole_query(start_emulator, monkeypatch):
    emu = start_emulator(many_mailboxes(2500))
    stream = client_for(emu, monkeypatch).pages("Get-Mailbox", {"ResultSize": "Unlimited"}, select=MAILBOX_FIELDS)
    next(stream)
    assert len(emu.invocations("Get-Mailbox")) == 1
    stream.close()


def test_truncation_warning_is_surfaced(start_emulator, monkeypatch):
    emu = start_emulator(many_mailboxes(30))
    result = client_for(emu, monkeypatch).invoke("Get-Mailbox", {"ResultSize": "10"}, select=MAILBOX_FIELDS)
    assert len(result.rows) == 10
    assert any("more results available" in warning for warning in result.warnings)


def test_next_link_to_another_host_is_refused_and_the_token_stays_home(start_emulator, monkeypatch):
    emu = start_emulator(many_mailboxes(1500))
    emu.add_fault(Fault("foreign_next_link", cmdlet="Get-Mailbox"))
    with pytest.raises(ExchangeProtocolError, match="refused to follow a link"):
        client_for(emu, monkeypatch).invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=MAILBOX_FIELDS)
    assert emu.foreign_requests == []


def test_next_link_loop_stops_with_an_error(start_emulator, monkeypatch):
    emu = start_emulator(many_mailboxes(3500))
    emu.add_fault(Fault("loop_next_link", cmdlet="Get-Mailbox", page=2))
    with pytest.raises(ExchangeProtocolError, match="loop"):
        client_for(emu, monkeypatch).invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=MAILBOX_FIELDS)


def test_expired_cursor_restarts_the_query_once(start_emulator, monkeypatch):
    emu = start_emulator(many_mailboxes(2500))
    emu.add_fault(Fault("expire_cursor", cmdlet="Get-Mailbox"))
    pages = list(client_for(emu, monkeypatch).pages("Get-Mailbox", {"ResultSize": "Unlimited"}, select=MAILBOX_FIELDS))
    restart = [i for i, page in enumerate(pages) if page.restarted]
    assert len(restart) == 1
    after_restart = pages[restart[0] :]
    assert sum(len(page.rows) for page in after_restart) == 2500
    result = client_for(emu, monkeypatch).invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=MAILBOX_FIELDS)
    assert len(result.rows) == 2500  # invoke() discards the pages before the restart


def test_a_second_expired_cursor_is_an_error(start_emulator, monkeypatch):
    emu = start_emulator(many_mailboxes(2500))
    emu.add_fault(Fault("expire_cursor", cmdlet="Get-Mailbox", times=2))
    with pytest.raises(PaginationExpired):
        client_for(emu, monkeypatch).invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, select=MAILBOX_FIELDS)


def test_throttling_honours_retry_after_then_succeeds(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(Fault("status", cmdlet="Get-OrganizationConfig", status=429, headers={"Retry-After": "0.3"}, times=2))
    started = time.monotonic()
    rows = client_for(emu, monkeypatch).invoke("Get-OrganizationConfig").rows
    assert rows and time.monotonic() - started >= 0.6
    assert len(emu.invocations("Get-OrganizationConfig")) == 3


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_transient_server_errors_are_retried(start_emulator, monkeypatch, status):
    emu = start_emulator()
    emu.add_fault(Fault("status", cmdlet="Get-OrganizationConfig", status=status, body="html"))
    assert client_for(emu, monkeypatch).invoke("Get-OrganizationConfig").rows
    assert len(emu.invocations("Get-OrganizationConfig")) == 2


def test_a_plain_500_is_retried_only_once(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(Fault("status", cmdlet="Get-OrganizationConfig", status=500, times=-1))
    with pytest.raises(Exception, match="500"):
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")
    assert len(emu.invocations("Get-OrganizationConfig")) == 2


def test_attempts_are_bounded(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(Fault("status", cmdlet="Get-OrganizationConfig", status=503, times=-1))
    with pytest.raises(Exception, match="503"):
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")
    assert len(emu.invocations("Get-OrganizationConfig")) == 5


def test_an_absurd_retry_after_fails_at_once_instead_of_sleeping(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(
        Fault("status", cmdlet="Get-OrganizationConfig", status=429, headers={"Retry-After": "3600"}, times=-1)
    )
    started = time.monotonic()
    with pytest.raises(ExchangeDeadlineExceeded, match="throttled"):
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")
    assert time.monotonic() - started < 5


def test_a_slow_answer_is_cut_off_by_the_deadline(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(Fault("delay", cmdlet="Get-OrganizationConfig", seconds=10, times=-1))
    started = time.monotonic()
    with pytest.raises(ExchangeDeadlineExceeded):
        client_for(emu, monkeypatch, policy=RetryPolicy(deadline_seconds=2, backoff_base_seconds=0.05)).invoke(
            "Get-OrganizationConfig"
        )
    assert time.monotonic() - started < 5


def test_connection_reset_mid_body_is_retried(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(Fault("reset", cmdlet="Get-OrganizationConfig"))
    assert client_for(emu, monkeypatch).invoke("Get-OrganizationConfig").rows
    assert len(emu.invocations("Get-OrganizationConfig")) == 2


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            Fault(
                "status", cmdlet="Get-OrganizationConfig", status=400, body="envelope", message="Cannot bind parameter"
            ),
            ExchangeBadRequest,
        ),
        (Fault("status", cmdlet="Get-OrganizationConfig", status=403, body="nul"), ExchangePermissionError),
        (
            Fault("status", cmdlet="Get-OrganizationConfig", status=404, body="envelope", message="couldn't be found"),
            ExchangeNotFound,
        ),
    ],
)
def test_client_errors_are_never_retried(start_emulator, monkeypatch, fault, expected):
    emu = start_emulator()
    emu.add_fault(fault)
    with pytest.raises(expected):
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")
    assert len(emu.invocations("Get-OrganizationConfig")) == 1


@pytest.mark.parametrize("body", ["truncated_json", "garbage", "html", "empty"])
def test_a_200_that_is_not_json_is_a_protocol_error(start_emulator, monkeypatch, body):
    emu = start_emulator()
    emu.add_fault(Fault("status", cmdlet="Get-OrganizationConfig", status=200, body=body))
    with pytest.raises(ExchangeProtocolError):
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")


def test_401_gets_one_fresh_token_then_succeeds(start_emulator, monkeypatch):
    emu = start_emulator()
    emu.add_fault(Fault("status", cmdlet="Get-OrganizationConfig", status=401))
    client = client_for(emu, monkeypatch)
    assert client.invoke("Get-OrganizationConfig").rows
    assert len(emu.token_requests) == 2
    assert len(emu.invocations("Get-OrganizationConfig")) == 2


def test_persistent_401_is_an_auth_error_after_one_refresh(start_emulator, monkeypatch):
    emu = start_emulator(scenario(principal={"roles": [], "directory_roles": ["Exchange Administrator"]}))
    with pytest.raises(ExchangeAuthError, match=r"Exchange\.ManageAsApp"):
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")
    assert len(emu.invocations("Get-OrganizationConfig")) == 2


def test_no_directory_role_is_a_permission_error_naming_the_roles(start_emulator, monkeypatch):
    emu = start_emulator(scenario(principal={"roles": ["Exchange.ManageAsApp"], "directory_roles": []}))
    with pytest.raises(ExchangePermissionError, match="Global Reader"):
        client_for(emu, monkeypatch).invoke("Get-OrganizationConfig")


def test_audit_log_anchor_is_sent_when_asked(start_emulator, monkeypatch):
    emu = start_emulator(scenario(admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False}))
    anchor = system_anchor(AUDIT_LOG_ANCHOR_GUID, TENANT_ID)
    client_for(emu, monkeypatch).invoke(
        "Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": True}, anchor=anchor
    )
    assert emu.invocations("Set-AdminAuditLogConfig")[0].headers["x-anchormailbox"] == anchor
    assert emu.tenant.admin_audit_log_config["UnifiedAuditLogIngestionEnabled"] is True


@pytest.mark.parametrize("auth_mode", ["secret", "certificate", "managed_identity"])
def test_every_auth_mode_reaches_exchange_and_only_exchange_sees_the_token(start_emulator, monkeypatch, auth_mode):
    emu = start_emulator()
    assert client_for(emu, monkeypatch, auth_mode=auth_mode).invoke("Get-OrganizationConfig").rows
    tokens = bearer_tokens(emu)
    assert tokens
    for request in emu.requests:
        if request.listener != "exchange":
            assert not any(token in str(request.headers) or token in str(request.body) for token in tokens)
