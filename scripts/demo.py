"""`make demo`: the daily check against the built-in emulated tenant, then the fix and a clean re-check.

Starts the emulator (Exchange Online, Entra ID and managed identity on loopback), then runs the real CLI in
child processes, exactly as an administrator would: check → remediate --dry-run → remediate → check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from emulator import Emulator  # noqa: E402  (needs the repo on sys.path first)

SCENARIO = REPO / "emulator" / "scenarios" / "noncompliant.json"
STEPS = [
    ("1. Daily check of the emulated tenant (expect NonCompliant, exit 1)", ["check"]),
    ("2. Remediation, dry run: what would change (nothing is written)", ["remediate", "--dry-run"]),
    ("3. Remediation: write, then verify by reading back", ["remediate"]),
    ("4. Re-check (expect Compliant, exit 0)", ["check"]),
]


def main() -> int:
    with Emulator(SCENARIO) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EXO_", "APPLICATIONINSIGHTS_"))}
        env.update(emu.env("managed_identity"))
        env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
        print(f"Emulated tenant {emu.tenant_id} at {emu.exchange_url} (managed identity via {emu.identity_endpoint})")
        code = 2
        for title, args in STEPS:
            print(f"\n=== {title}\n$ python -m shared {' '.join(args)}", flush=True)
            code = subprocess.run([sys.executable, "-m", "shared", *args], cwd=REPO, env=env, check=False).returncode
            print(f"(exit code {code})", flush=True)
        writes = [f"{call.cmdlet} {call.body['CmdletInput']['Parameters']}" for call in emu.writes()]
        print("\nWrites the emulated Exchange received:", *writes or ["none"], sep="\n  ")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
