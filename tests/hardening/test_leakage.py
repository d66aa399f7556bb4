"""Leakage: every flow, failures included, run with canary secrets; not one may surface anywhere a person or a
system can read it: stdout, stderr, logs, exported telemetry, evidence reports (local files and archived blobs).

Canaries: every bearer token the emulator issued or received, the app's client secret, the managed-identity
header, the certificate's private key and the password of an encrypted copy of it, and a wrong secret that must
not be echoed back when the login service refuses it.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from cryptography.hazmat.primitives import serialization

from emulator import Fault
from tests.functions.harness import call_http, function_env, run_timer
from tests.functions.test_http_remediation import AUTHORISED, EASY_AUTH
from tests.support.cli import run_cli, spawn_cli
from tests.support.tenant import TENANT_ID

SCENARIO = "emulator/scenarios/noncompliant.json"
WRONG_SECRET = "canary-wrong-secret-7f3a9c1e"
CERT_PASSWORD = "canary-cert-password-51d2b8"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")


def encrypted_certificate(emu, tmp_path: Path) -> Path:
    """The app's certificate with its key encrypted under CERT_PASSWORD (the EXO_CERTIFICATE_PASSWORD path)."""
    pem = Path(emu.certificate_path).read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    certificate = pem[pem.index(b"-----BEGIN CERTIFICATE-----") :]
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(CERT_PASSWORD.encode()),
    )
    path = tmp_path / "encrypted.pem"
    path.write_bytes(encrypted + certificate)
    return path


def canaries(emu) -> set[str]:
    tokens = {request.headers["authorization"][7:] for request in emu.requests if "authorization" in request.headers}
    assert tokens, "the flows should have used tokens"
    key_body = Path(emu.certificate_path).read_text().split("-----")[2].strip().splitlines()
    return tokens | {
        emu.client_secret,
        emu.identity_header,
        WRONG_SECRET,
        CERT_PASSWORD,
        *[line for line in key_body if len(line) >= 40][:5],
    }


def assert_clean(texts: dict[str, str], secrets: set[str]) -> None:
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
        # Also no token-shaped string at all (a JWT we did not know about would still be a leak).
        assert not JWT.search(text), f"a JWT-shaped string appeared in {where}"


@pytest.mark.e2e
def test_no_cli_flow_leaks_a_secret(start_emulator, tmp_path):
    emu = start_emulator(SCENARIO)
    encrypted = encrypted_certificate(emu, tmp_path)
    emu.add_fault(Fault("status", status=401, times=2))  # forces token refreshes mid-run
    outputs: dict[str, str] = {}
    flows = [
        ("check", "-v"),
        ("remediate", "--dry-run", "-v"),
        ("report", "--format", "html", "--out", "{out}.html"),
        ("report", "--format", "md", "--out", "{out}.md"),
        ("report", "--format", "json", "--out", "{out}.json"),
        ("remediate", "-v", "--json"),
        ("revert", "--confirm", TENANT_ID, "-v"),
    ]
    for mode in ("managed_identity", "secret", "certificate"):
        extra = (
            {"EXO_CERTIFICATE_PATH": str(encrypted), "EXO_CERTIFICATE_PASSWORD": CERT_PASSWORD}
            if mode == "certificate"
            else {}
        )
        for number, flow in enumerate(flows):
            out = tmp_path / f"{mode}-{number}"
            args = [part.format(out=out) for part in flow]
            result = spawn_cli(emu, *args, auth_mode=mode, env={**extra, "MAILBOX_REMEDIATION_WRITES_PER_SECOND": "50"})
            outputs[f"{mode} {' '.join(flow)} stdout"] = result.stdout
            outputs[f"{mode} {' '.join(flow)} stderr"] = result.stderr
            for written in tmp_path.glob(f"{mode}-{number}.*"):
                outputs[f"{mode} report {written.name}"] = written.read_text()
            with emu.lock:  # put the tenant back for the next flow
                emu.tenant.organization_config["AuditDisabled"] = True
    assert any("report" in key for key in outputs)
    assert_clean(outputs, canaries(emu))


@pytest.mark.parametrize(
    ("env", "fault"),
    [
        ({"EXO_CLIENT_SECRET": WRONG_SECRET}, None),
        ({}, Fault("status", status=401, times=-1)),
        ({}, Fault("garbage_token", listener="token", body="garbage", times=-1)),
        ({}, Fault("status", status=500, body="envelope", times=-1)),
        ({"EXO_CERTIFICATE_PASSWORD": CERT_PASSWORD}, None),
    ],
)
def test_failures_do_not_leak_either(start_emulator, env, fault):
    emu = start_emulator(SCENARIO)
    if fault:
        emu.add_fault(fault)
    mode = "certificate" if "EXO_CERTIFICATE_PASSWORD" in env else "secret"
    result = run_cli(
        emu,
        "check",
        "-v",
        "--json",
        auth_mode=mode,
        env={**env, "EXO_RETRY_BACKOFF_SECONDS": "0.05", "EXO_OPERATION_DEADLINE_SECONDS": "3"},
    )
    assert result.returncode == 2
    secrets = {emu.client_secret, WRONG_SECRET, CERT_PASSWORD}
    secrets |= {r.headers["authorization"][7:] for r in emu.requests if "authorization" in r.headers}
    assert_clean({"stdout": result.stdout, "stderr": result.stderr}, secrets)


def test_functions_leak_nothing_into_logs_telemetry_or_archived_evidence(start_emulator, azurite):
    emu = start_emulator(SCENARIO)
    emu.add_fault(Fault("status", status=401, times=1))
    storage = {"AzureWebJobsStorage": azurite.connection_string, "EVIDENCE_CONTAINER": "leakage"}
    timer = run_timer(emu, AUDIT_MODE="remediate", **storage)
    principal = {"X-MS-TOKEN-AAD-ACCESS-TOKEN": "eyJcanaryeasyauthtoken.eyJpbmdlc3Rpb24.c2lnbmF0dXJl", **AUTHORISED}
    answers = [
        call_http(emu, body, headers=principal, **EASY_AUTH, **storage)
        for body in ('{"dryRun": true}', '{"dryRun": false}', "{}", "{not json")
    ]
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client("leakage")
    archived = {blob.name: blobs.download_blob(blob.name).readall().decode() for blob in blobs.list_blobs()}
    assert len(archived) >= 6  # timer + HTTP runs, three formats each
    texts = {
        "timer stderr": timer.stderr,
        "telemetry": json.dumps(emu.telemetry),
        **{f"http answer {i}": json.dumps(answer) for i, answer in enumerate(answers)},
        **{f"blob {name}": text for name, text in archived.items()},
    }
    secrets = canaries(emu) | {
        "eyJcanaryeasyauthtoken.eyJpbmdlc3Rpb24.c2lnbmF0dXJl",
        base64.b64encode(emu.client_secret.encode()).decode(),
    }
    assert_clean(texts, secrets)
    assert "mbx-" in texts["telemetry"]  # identities were pseudonymised, not dropped silently
    assert function_env(emu)["EXO_AUTH_MODE"] == "managed_identity"
