"""grant-permissions signed in as an administrator: the `grant` fixture and its stand-in Azure CLI.

azure-identity's real AzureCliCredential runs `az`, here a stand-in on PATH that gets a delegated token (password
grant) for the scenario's administrator from the emulated Entra ID, for whichever resource it is asked: Graph,
Exchange, Security & Compliance.
"""

from __future__ import annotations

import argparse
import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.identity import AzureCliCredential

from shared.cli.grant_permissions import add_grant_permissions_parser, run_grant_permissions

FAKE_AZ = """#!{python}
# Stand-in for `az account get-access-token --output json --resource R`: a delegated token for an administrator.
import json, os, ssl, sys, time, urllib.parse, urllib.request
args = sys.argv[1:]
if args[:2] != ["account", "get-access-token"] or "--resource" not in args:
    sys.exit("fake az: unexpected arguments " + " ".join(args))
resource = args[args.index("--resource") + 1].rstrip("/")
form = urllib.parse.urlencode({{"grant_type": "password", "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
                               "username": os.environ["FAKE_AZ_USERNAME"], "password": os.environ["FAKE_AZ_PASSWORD"],
                               "scope": resource + "/.default offline_access openid profile"}}).encode()
context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
with urllib.request.urlopen(os.environ["FAKE_AZ_TOKEN_URL"], form, context=context, timeout=10) as answer:
    token = json.load(answer)
print(json.dumps({{"accessToken": token["access_token"], "expires_on": int(time.time()) + int(token["expires_in"]),
                  "tokenType": "Bearer"}}))
"""


class Run:
    """One in-process grant-permissions run: exit code, stdout, stderr (and the JSON document when --json was given)."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.out)

    def outcomes(self) -> list[tuple[str, str]]:
        """(name, outcome) per Graph assignment."""
        return [(a["name"], a["outcome"]) for a in self.document["assignments"]]

    def steps(self, part: str = "exchange_roles") -> list[tuple[str, str]]:
        """(cmdlet, outcome) per step of one role group part: `exchange_roles` or `compliance_roles`."""
        return [(s["cmdlet"], s["outcome"]) for s in self.document[part]["steps"]]


@pytest.fixture
def grant(monkeypatch, capsys, tmp_path: Path):
    """`grant(emu, *argv, env=...)`: the command in process, signed in as the scenario's administrator through
    `az`; `env` adds settings (e.g. AUDIT_CANARY_*) to the emulator's endpoints."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ.format(python=sys.executable), encoding="utf-8")
    az.chmod(az.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")

    def run(emu: Any, *argv: str, env: dict[str, str] | None = None) -> Run:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_bundle)
        monkeypatch.setenv("FAKE_AZ_TOKEN_URL", f"{emu.authority_url}/{emu.tenant_id}/oauth2/v2.0/token")
        monkeypatch.setenv("FAKE_AZ_USERNAME", emu.admin_upn)
        monkeypatch.setenv("FAKE_AZ_PASSWORD", emu.admin_passwords[emu.admin_upn])
        parser = argparse.ArgumentParser()
        add_grant_permissions_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["grant-permissions", "--principal-id", emu.managed_identity_principal_id, *argv])
        environ = {
            "GRAPH_ENDPOINT": emu.graph_url,
            "EXO_ENDPOINT": emu.exchange_url,
            "IPPS_ENDPOINT": emu.compliance_url,
            **(env or {}),
        }
        code = run_grant_permissions(args, credential=AzureCliCredential(), environ=environ)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
