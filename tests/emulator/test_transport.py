"""The in-process transport answers exactly as the sockets do: same handler, same faults, same request log."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from emulator import Fault
from shared.exchange.client import ExchangeClient, RetryPolicy
from shared.exchange.errors import ExchangeTransportError

from .support import TENANT_ID, Exo, raw_body, secret_token

PAGED = {"tenant_id": TENANT_ID, "generate_mailboxes": {"count": 25}}
SMALL_PAGES = {"Prefer": "odata.maxpagesize=10"}
# Differ per answer on any path, or are the socket server's own (Server, Date).
VOLATILE = ("request-id", "date", "server", "x-calculatedbetarget")


def in_process(emu, token=None):
    exo = Exo(emu, token)
    emu.mount(exo.session)
    return exo


def answer(response):
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in VOLATILE}
    return response.status_code, headers, raw_body(response)


def test_socket_and_transport_give_the_same_answers_and_the_same_log(make_emulator):
    emu = make_emulator(PAGED)
    socket_exo = Exo(emu)
    transport_exo = in_process(emu, socket_exo.token)
    calls = [
        ("Get-OrganizationConfig", None, None),
        ("Get-Mailbox", {"Identity": "nobody"}, None),
        ("Get-Mailbox", {"ResultSize": "Unlimited"}, "Name,AuditEnabled"),
        ("Remove-Mailbox", {}, None),
    ]
    for cmdlet, parameters, select in calls:
        emu.reset_log()
        over_socket = socket_exo.post(cmdlet, parameters, select=select, headers=SMALL_PAGES)
        [socket_record] = emu.requests
        emu.reset_log()
        over_transport = transport_exo.post(cmdlet, parameters, select=select, headers=SMALL_PAGES)
        [transport_record] = emu.requests
        socket_answer, transport_answer = answer(over_socket), answer(over_transport)
        if over_socket.status_code == 200:  # a paging cursor is new per answer; the rest must be identical
            socket_page, transport_page = over_socket.json(), over_transport.json()
            assert ("@odata.nextLink" in socket_page) == ("@odata.nextLink" in transport_page)
            socket_page.pop("@odata.nextLink", None)
            transport_page.pop("@odata.nextLink", None)
            assert transport_page == socket_page
            socket_answer, transport_answer = socket_answer[:2], transport_answer[:2]
            del socket_answer[1]["content-length"], transport_answer[1]["content-length"]
        assert transport_answer == socket_answer, cmdlet
        for field in ("method", "path", "query", "cmdlet", "status", "listener", "host", "body"):
            assert getattr(transport_record, field) == getattr(socket_record, field), field


def test_paging_through_the_transport_follows_every_next_link(make_emulator):
    emu = make_emulator(PAGED)
    pages = in_process(emu).pages("Get-Mailbox", {"ResultSize": "Unlimited"}, headers=SMALL_PAGES)
    assert [len(page["value"]) for page in pages] == [10, 10, 5]
    assert [r.status for r in emu.invocations("Get-Mailbox")] == [200, 200, 200]


def test_the_exchange_client_runs_over_the_transport_with_retries_and_faults(make_emulator, ca_env):
    emu = make_emulator(PAGED)
    ca_env(emu)
    emu.add_fault(Fault("status", cmdlet="Get-Mailbox", status=503, times=1))
    token = secret_token(emu)

    class Tokens:
        def get_token(self) -> str:
            return token

        def invalidate(self) -> None:
            pass

    policy = RetryPolicy(max_attempts=3, deadline_seconds=5, backoff_base_seconds=0.01, backoff_cap_seconds=0.02)
    client = ExchangeClient(emu.exchange_url, TENANT_ID, Tokens(), policy=policy, session=emu.mount(requests.Session()))
    rows = client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}).rows
    assert len(rows) == 25
    assert [f.kind for f in emu.fired_faults] == ["status"]
    emu.add_fault(Fault("reset", cmdlet="Get-OrganizationConfig", times=-1))
    with pytest.raises(ExchangeTransportError, match="connection failed"):
        client.invoke("Get-OrganizationConfig")


def test_reset_breaks_the_body_mid_read(make_emulator):
    emu = make_emulator()
    exo = in_process(emu)
    emu.add_fault(Fault("reset", cmdlet="Get-OrganizationConfig"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        exo.post("Get-OrganizationConfig")
    assert exo.post("Get-OrganizationConfig").status_code == 200


def test_a_delay_or_hang_longer_than_the_read_timeout_times_out(make_emulator):
    emu = make_emulator()
    exo = in_process(emu)
    emu.add_fault(Fault("delay", cmdlet="Get-OrganizationConfig", seconds=2))
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        exo.post("Get-OrganizationConfig", timeout=0.3)
    emu.add_fault(Fault("hang", cmdlet="Get-OrganizationConfig"))
    with pytest.raises(requests.exceptions.ReadTimeout):
        exo.post("Get-OrganizationConfig", timeout=0.3)
    assert time.monotonic() - started < 1.5
    emu.add_fault(Fault("delay", cmdlet="Get-OrganizationConfig", seconds=0.2))
    assert exo.post("Get-OrganizationConfig", timeout=5).status_code == 200


def test_a_short_hang_ends_the_connection_and_stop_ends_a_long_one(make_emulator):
    emu = make_emulator()
    exo = in_process(emu)
    emu.add_fault(Fault("hang", cmdlet="Get-OrganizationConfig", seconds=0.1))
    with pytest.raises(requests.exceptions.ConnectionError):
        exo.post("Get-OrganizationConfig", timeout=5)
    emu.add_fault(Fault("hang", cmdlet="Get-Mailbox"))
    outcome: list[BaseException] = []

    def stuck() -> None:
        try:
            exo.post("Get-Mailbox", timeout=30)
        except requests.RequestException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=stuck)
    worker.start()
    time.sleep(0.2)
    emu.stop()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert isinstance(outcome[0], requests.exceptions.ConnectionError)


def test_only_emulator_urls_are_answered(make_emulator):
    emu = make_emulator()
    with pytest.raises(requests.exceptions.ConnectionError, match="not served by the emulator"):
        emu.transport().send(requests.Request("GET", "https://example.com/").prepare())
    with pytest.raises(ValueError, match="no emulator listener"):
        emu.listener_for("https://127.0.0.1:1/")
    assert emu.listener_for(emu.graph_url + "/v1.0/me") == "graph"
