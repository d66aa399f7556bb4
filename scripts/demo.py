"""`make demo`: the daily check against the built-in emulated tenant, then the fix and a clean re-check.

Starts the emulator (Exchange Online, Entra ID, managed identity and Application Insights ingestion on loopback),
runs the daily timer function's code once, as the Functions worker would, with its telemetry going to the emulated
ingestion endpoint; then the real CLI in child processes, exactly as an administrator would:
check → remediate --dry-run → remediate → check. Then the activity watch: a first pass reads the audit feed (the
fixes just made are the product's own, recorded but not alerted), someone with another identity switches auditing
off, and the next pass catches it (audit-tampering), re-checks the control and, with AUDIT_MODE=remediate, switches
auditing back on; a last check confirms it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from emulator import Emulator  # noqa: E402  (needs the repo on sys.path first)

SCENARIO = REPO / "emulator" / "scenarios" / "noncompliant.json"
STEPS = [
    ("2. The same check at a terminal (expect NonCompliant, exit 1)", ["check"]),
    ("3. Remediation, dry run: what would change (nothing is written)", ["remediate", "--dry-run"]),
    ("4. Remediation: write, then verify by reading back", ["remediate"]),
    ("5. Re-check (expect Compliant, exit 0)", ["check"]),
]
HERMETIC_TELEMETRY = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "azure_app_service",
    "AUDIT_SCHEDULE": "0 0 6 * * *",
}


def run_timer(env: dict[str, str], emu: Emulator) -> None:
    """The main job: the daily_audit_check timer function, with telemetry to the emulated ingestion endpoint."""
    print(
        "=== 1. The daily timer function (daily_audit_check), telemetry to the emulated Application Insights",
        flush=True,
    )
    timer_env = {**env, **HERMETIC_TELEMETRY, "APPLICATIONINSIGHTS_CONNECTION_STRING": emu.connection_string}
    subprocess.run([sys.executable, "scripts/invoke_function.py", "timer"], cwd=REPO, env=timer_env, check=False)
    names = [e.get("data", {}).get("baseData", {}).get("name") for e in emu.telemetry]
    for name in ("MailboxAuditCheckCompleted", "MailboxAuditControlResult"):
        print(f"  Application Insights received {names.count(name)} × {name}")


def shared_cli(title: str, args: list[str], env: dict[str, str]) -> int:
    print(f"\n=== {title}\n$ python -m shared {' '.join(args)}", flush=True)
    code = subprocess.run([sys.executable, "-m", "shared", *args], cwd=REPO, env=env, check=False).returncode
    print(f"(exit code {code})", flush=True)
    return code


def watch_demo(env: dict[str, str], emu: Emulator) -> int:
    """The activity watch catching an audit switch-off by another identity, and the re-check switching it back on."""
    with tempfile.TemporaryDirectory() as folder:
        watch = ["watch", "--state", str(Path(folder) / "watch.sqlite3")]
        shared_cli("6. Activity watch, first pass (expect Clear, exit 0: the fixes above were our own)", watch, env)
        attacker = {k: v for k, v in os.environ.items() if not k.startswith(("EXO_", "APPLICATIONINSIGHTS_"))}
        attacker.update(emu.env("secret"))  # another app registration: its writes are not the product's
        attacker.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
        shared_cli(
            "7. Someone with another identity switches audit-by-default OFF",
            ["revert", "--confirm", emu.tenant_id],
            attacker,
        )
        time.sleep(1.1)  # the feed lists whole seconds
        shared_cli(
            "8. Activity watch, AUDIT_MODE=remediate (expect the tampering alert, exit 1, and the re-check "
            "switching auditing back on)",
            watch,
            {**env, "AUDIT_MODE": "remediate"},
        )
    return shared_cli("9. Re-check (expect Compliant, exit 0)", ["check"], env)


def main() -> int:
    with Emulator(SCENARIO) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EXO_", "APPLICATIONINSIGHTS_"))}
        env.update(emu.env("managed_identity"))
        env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
        print(f"Emulated tenant {emu.tenant_id} at {emu.exchange_url} (managed identity via {emu.identity_endpoint})")
        run_timer(env, emu)
        code = 2
        for title, args in STEPS:
            code = shared_cli(title, args, env)
        code = watch_demo(env, emu) if code == 0 else code
        writes = [f"{call.cmdlet} {call.body['CmdletInput']['Parameters']}" for call in emu.writes()]
        print("\nWrites the emulated Exchange received:", *writes or ["none"], sep="\n  ")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
