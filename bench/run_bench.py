"""Benchmark: the full daily check against the emulator at growing tenant sizes.

For each size it starts the emulator in its own process (so its memory and CPU are not counted), runs
the full check (`python -m shared check --json`, through bench/measure.py) as a child process, and reports wall
time, requests sent, the check's own peak resident memory and CPU time. A fixed number of mailboxes and bypass
entries are non-compliant at every size, so memory that grew with the tenant (rather than the findings) would show.

    python bench/run_bench.py [--sizes 1000 10000 100000] [--latency-ms 0] [--out bench/results/latest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FINDINGS = 10  # non-compliant mailboxes and enabled bypass entries per size, whatever the size
ACTIONS = {
    "AuditAdmin": [
        "ApplyRecord",
        "Copy",
        "Create",
        "FolderBind",
        "HardDelete",
        "MailItemsAccessed",
        "Move",
        "MoveToDeletedItems",
        "Send",
        "SendAs",
        "SendOnBehalf",
        "SoftDelete",
        "Update",
        "UpdateCalendarDelegation",
        "UpdateFolderPermissions",
        "UpdateInboxRules",
    ],
    "AuditDelegate": [
        "ApplyRecord",
        "Create",
        "FolderBind",
        "HardDelete",
        "MailItemsAccessed",
        "Move",
        "MoveToDeletedItems",
        "SendAs",
        "SendOnBehalf",
        "SoftDelete",
        "Update",
        "UpdateFolderPermissions",
        "UpdateInboxRules",
    ],
    "AuditOwner": [
        "ApplyRecord",
        "Create",
        "HardDelete",
        "MailboxLogin",
        "MailItemsAccessed",
        "Move",
        "MoveToDeletedItems",
        "Send",
        "SoftDelete",
        "Update",
        "UpdateCalendarDelegation",
        "UpdateFolderPermissions",
        "UpdateInboxRules",
    ],
}


def scenario(size: int, latency_ms: float) -> dict:
    every = max(size // FINDINGS, 1)
    tenant = {
        "description": f"benchmark tenant with {size} mailboxes",
        "generate_mailboxes": {
            "count": size,
            "template": {**ACTIONS, "Name": "user{i:06d}", "AuditLogAgeLimit": "180.00:00:00"},
            "variants": [
                {
                    "every": every,
                    "offset": every // 2,
                    "set": {"AuditOwner": ["Update"], "AuditLogAgeLimit": "30.00:00:00"},
                }
            ],
        },
        "generate_bypass_associations": {"count": max(size // 10, 1), "enabled_every": max(size // 10 // FINDINGS, 1)},
    }
    if latency_ms:
        tenant["faults"] = [{"kind": "delay", "listener": "exchange", "seconds": latency_ms / 1000, "times": -1}]
    return tenant


def start_emulator(scenario_file: Path, port_file: Path) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--scenario", str(scenario_file), "--port-file", str(port_file)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"emulator did not start: {process.stderr.read().decode() if process.stderr else ''}")
        time.sleep(0.05)
    return process, json.loads(port_file.read_text())


def run_check(env: dict[str, str], work: Path) -> dict:
    usage_file = work / "usage.json"
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "bench/measure.py", "check", "--json"],
        cwd=REPO,
        env={**env, "BENCH_USAGE_FILE": str(usage_file)},
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - started
    document = json.loads(child.stdout)
    assert document["status"] != "Error", child.stderr.decode()[-2000:]
    controls = {c["id"]: c for c in document["controls"]}
    return {
        "wall_seconds": round(wall, 2),
        "requests": document["requests_sent"],
        **json.loads(usage_file.read_text()),
        "mailboxes_scanned": controls["mailbox-audit-actions"]["details"]["mailboxes_scanned"],
        "mailbox_findings": controls["mailbox-audit-actions"]["details"]["mailboxes_noncompliant"],
        "bypass_entries": controls["audit-bypass"]["details"]["associations_total"],
        "status": document["status"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every Exchange request")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    results = []
    print(f"{'mailboxes':>10} {'bypass':>7} {'wall s':>8} {'requests':>9} {'peak RSS MB':>12} {'CPU s':>7}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as work:
            scenario_file, port_file = Path(work, "scenario.json"), Path(work, "ports.json")
            scenario_file.write_text(json.dumps(scenario(size, args.latency_ms)))
            emulator, info = start_emulator(scenario_file, port_file)
            try:
                env = {k: v for k, v in os.environ.items() if not k.startswith(("EXO_", "APPLICATIONINSIGHTS_"))}
                env.update(info["env"])
                env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
                result = {"size": size, "latency_ms": args.latency_ms, **run_check(env, Path(work))}
            finally:
                emulator.terminate()
                emulator.wait(timeout=30)
        results.append(result)
        print(
            f"{size:>10} {result['bypass_entries']:>7} {result['wall_seconds']:>8} {result['requests']:>9} "
            f"{result['peak_rss_mb']:>12} {result['cpu_seconds']:>7}",
            flush=True,
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
