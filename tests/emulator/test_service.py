"""Ingestion, environment, scenarios and the command line."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from emulator import Emulator, Fault, load_scenario
from emulator.tenant import TenantState

from .support import TENANT_ID, Exo

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "emulator" / "scenarios"


def test_ingestion_records_envelopes_plain_and_gzipped(make_emulator):
    emu = make_emulator()
    envelope = {
        "name": "Microsoft.ApplicationInsights.Event",
        "iKey": "k",
        "data": {"baseType": "EventData", "baseData": {"ver": 2, "name": "MailboxAuditCheckCompleted"}},
    }
    plain = requests.post(emu.ingestion_url + "v2.1/track", json=[envelope, envelope], timeout=10)
    assert plain.json() == {"itemsReceived": 2, "itemsAccepted": 2, "errors": []}
    zipped = requests.post(
        emu.ingestion_url + "v2/track",
        data=gzip.compress(json.dumps([envelope]).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        timeout=10,
    )
    assert zipped.status_code == 200
    assert [e["data"]["baseData"]["name"] for e in emu.telemetry] == ["MailboxAuditCheckCompleted"] * 3
    emu.add_fault(Fault("status", listener="ingestion", status=503))
    assert requests.post(emu.ingestion_url + "v2.1/track", json=[envelope], timeout=10).status_code == 503
    assert len(emu.telemetry) == 3
    emu.reset_log()
    assert emu.telemetry == [] and emu.requests == [] and emu.fired_faults == []


def test_env_for_each_auth_mode(make_emulator):
    emu = make_emulator()
    common = {
        "EXO_TENANT_ID": TENANT_ID,
        "EXO_ORGANIZATION": "contoso.onmicrosoft.com",
        "EXO_ENDPOINT": emu.exchange_url,
        "EXO_AUTHORITY": emu.authority_url,
        "REQUESTS_CA_BUNDLE": emu.ca_bundle,
    }
    mi, secret, cert = emu.env("managed_identity"), emu.env("secret"), emu.env("certificate")
    for env, mode in ((mi, "managed_identity"), (secret, "secret"), (cert, "certificate")):
        assert common.items() <= env.items() and env["EXO_AUTH_MODE"] == mode
        assert f"IngestionEndpoint={emu.ingestion_url}" in env["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert (mi["EXO_CLIENT_ID"], mi["IDENTITY_ENDPOINT"], mi["IDENTITY_HEADER"]) == (
        emu.managed_identity_client_id,
        emu.identity_endpoint,
        emu.identity_header,
    )
    assert (secret["EXO_CLIENT_ID"], secret["EXO_CLIENT_SECRET"]) == (emu.client_id, emu.client_secret)
    assert cert["EXO_CERTIFICATE_PATH"] == emu.certificate_path and os.path.isfile(emu.certificate_path)
    assert emu.exchange_url.startswith("https://127.0.0.1:") and emu.authority_url.startswith("https://localhost:")
    assert emu.foreign_url != emu.authority_url and emu.identity_endpoint.endswith("/msi/token")


def test_stop_removes_the_test_pki():
    with Emulator() as emu:
        bundle = emu.ca_bundle
        assert Path(bundle).is_file()
    assert not Path(bundle).exists()
    with pytest.raises(RuntimeError):
        _ = emu.exchange_url


def test_defaults_and_shipped_scenarios():
    default = load_scenario(None)
    assert default["organization_config"]["AuditDisabled"] is False
    assert default["admin_audit_log_config"]["UnifiedAuditLogIngestionEnabled"] is True
    assert default["principal"] == {"roles": ["Exchange.ManageAsApp"], "directory_roles": ["Exchange Administrator"]}
    [mailbox] = load_scenario({"mailboxes": [{"Name": "ann"}]})["mailboxes"]
    assert mailbox["RecipientTypeDetails"] == "UserMailbox" and mailbox["AuditEnabled"] is False
    assert mailbox["DefaultAuditSet"] == ["Admin", "Delegate", "Owner"]
    assert mailbox["AuditLogAgeLimit"] == "90.00:00:00" and "MailItemsAccessed" in mailbox["AuditOwner"]
    noncompliant = TenantState(load_scenario(SCENARIOS / "noncompliant.json"))
    assert noncompliant.organization_config["AuditDisabled"] is True
    assert noncompliant.admin_audit_log_config["UnifiedAuditLogIngestionEnabled"] is False
    assert {m["RecipientTypeDetails"] for m in noncompliant.mailboxes} >= {
        "UserMailbox",
        "SharedMailbox",
        "RoomMailbox",
    }
    assert any(m["AuditLogAgeLimit"] == "00:00:00" for m in noncompliant.mailboxes)
    assert any(set(m["DefaultAuditSet"]) != {"Admin", "Delegate", "Owner"} for m in noncompliant.mailboxes)
    assert sorted(b["AuditBypassEnabled"] for b in noncompliant.bypass_associations) == [False, True]
    assert TenantState(load_scenario(SCENARIOS / "dehydrated.json")).organization_config["IsDehydrated"] is True
    assert TenantState(load_scenario(SCENARIOS / "compliant.json")).organization_config["AuditDisabled"] is False
    with pytest.raises(ValueError, match="unknown scenario keys"):
        load_scenario({"mailbox": []})


@pytest.mark.slow
def test_one_hundred_thousand_generated_mailboxes_are_cheap():
    started = time.monotonic()
    state = TenantState(
        {"generate_mailboxes": {"count": 100_000, "variants": [{"every": 10, "set": {"AuditEnabled": True}}]}}
    )
    assert time.monotonic() - started < 5
    assert len(state.mailboxes) == 100_000 and len({m["Guid"] for m in state.mailboxes}) == 100_000
    assert state.mailbox("user099999@contoso.onmicrosoft.com")["AuditEnabled"] is False
    assert state.mailboxes[10]["AuditEnabled"] is True
    assert state.mailboxes[0]["AuditOwner"] is not state.mailboxes[1]["AuditOwner"]


def shell_assignments(line: str) -> dict[str, str]:
    """NAME -> value for every `export NAME='value'` on one line (the CLI always single-quotes)."""
    return dict(re.findall(r"export (\w+)='([^']*)'", line))


@pytest.mark.e2e
def test_command_line_prints_exports_and_stops_on_sigterm(tmp_path):
    port_file = tmp_path / "ports.json"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--scenario",
            str(SCENARIOS / "noncompliant.json"),
            "--port-file",
            str(port_file),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:
            lines.append(line)
            if line.startswith("# serving"):
                break
        exports = shell_assignments("".join(line for line in lines if line.startswith("export ")))
        assert exports["EXO_AUTH_MODE"] == "managed_identity"
        assert {"EXO_ENDPOINT", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE"} <= set(exports)
        [secret_line] = [line for line in lines if line.startswith("# secret:")]
        secret = shell_assignments(secret_line)
        for _ in range(100):
            if port_file.exists():
                break
            time.sleep(0.05)
        info = json.loads(port_file.read_text())
        running = SimpleNamespace(
            tenant_id=TENANT_ID,
            exchange_url=info["exchange_url"],
            authority_url=info["authority_url"],
            ca_bundle=info["ca_bundle"],
            client_id=secret["EXO_CLIENT_ID"],
            client_secret=secret["EXO_CLIENT_SECRET"],
        )
        assert Exo(running).ok("Get-OrganizationConfig")["value"][0]["AuditDisabled"] is True
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
        assert not port_file.exists()
    finally:
        if child.poll() is None:
            child.kill()
