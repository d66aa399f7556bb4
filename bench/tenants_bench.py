"""Benchmark: many tenants through the queue fan-out, with 1, 2 and 4 workers.

One emulator process stands for every customer tenant (generate_tenants: N tenants of M mailboxes each, behind one
Exchange, Entra ID and feed; each tenant gets its own token); Azurite's queue service holds the audit-tenants queue.
The dispatcher (shared.runtime.fanout.dispatch, the daily_audit_dispatch timer's body) puts one message per tenant
on it; then W worker processes, each playing one Function App instance that runs one tenant at a time, take the
messages and run each tenant's daily check (fanout.run_message, the tenant_audit_check function's body) in
federated_identity mode. Reported per worker count: wall time from the workers' start to the last tenant done
(cold start included), tenants per minute, and each worker's peak resident memory. A fresh emulator per round.

    python bench/tenants_bench.py [--tenants 200] [--mailboxes 1000] [--workers 1 2 4] [--latency-ms 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from run_bench import scenario as tenant_scenario  # noqa: E402
from run_bench import start_emulator  # noqa: E402

from shared.runtime import fanout  # noqa: E402
from tests.support.queues import Queues  # noqa: E402
from tests.support.report_tools import start_azurite  # noqa: E402


def round_of(workers: int, tenants: int, mailboxes: int, latency_ms: float, azurite_port: int, work: Path) -> dict:
    scenario_file, port_file = work / f"scenario-{workers}.json", work / f"ports-{workers}.json"
    template = tenant_scenario(mailboxes, 0)
    template.pop("description", None)
    whole: dict = {"generate_tenants": {"count": tenants, "template": template}}
    if latency_ms:  # every Exchange request waits this long, as Exchange Online's round trips do
        whole["faults"] = [{"kind": "delay", "listener": "exchange", "seconds": latency_ms / 1000, "times": -1}]
    scenario_file.write_text(json.dumps(whole))
    emulator, info = start_emulator(scenario_file, port_file)
    try:
        register = work / f"tenants-{workers}.json"
        register.write_text(json.dumps(info["guest_tenants"]))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EXO_", "APPLICATIONINSIGHTS_", "AUDIT_"))}
        env.update(info["federated_env"])
        env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
        env.update({"AUDIT_TENANTS_FILE": str(register), "MAILBOX_REMEDIATION_WRITES_PER_SECOND": "50"})
        queue = f"audit-tenants-{uuid.uuid4().hex[:8]}"
        queues = Queues(azurite_port)
        queues.create(queue)
        messages = fanout.dispatch("check", env)
        for message in messages:
            queues.put(queue, message)
        started = time.time()
        outs = [work / f"worker-{workers}-{i}.json" for i in range(workers)]
        children = [
            subprocess.Popen(
                [sys.executable, "bench/tenant_worker.py", str(azurite_port), str(out), queue],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for out in outs
        ]
        for child in children:
            child.wait(timeout=3600)
        results = [json.loads(out.read_text()) for out in outs]
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    wall = max(result["last_done"] for result in results) - started
    done = sum(result["tenants"] for result in results)
    return {
        "workers": workers,
        "tenants": done,
        "failed": sum(result["failed"] for result in results),
        "wall_seconds": round(wall, 1),
        "tenants_per_minute": round(done / wall * 60, 1),
        "peak_rss_mb_per_worker": [result["peak_rss_mb"] for result in results],
        "tenants_per_worker": [result["tenants"] for result in results],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every Exchange request")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    results = []
    print(
        f"{args.tenants} tenants of {args.mailboxes} mailboxes, +{args.latency_ms:g} ms per Exchange request, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'workers':>8} {'tenants':>8} {'wall s':>8} {'tenants/min':>12} {'peak RSS MB per worker':>24}")
    with tempfile.TemporaryDirectory() as work:
        import pytest  # start_azurite reports a missing Azurite through pytest.fail

        try:
            azurite = start_azurite(Path(work), service="queue")
        except pytest.fail.Exception as exc:
            print(exc, file=sys.stderr)
            return 2
        try:
            for workers in args.workers:
                result = round_of(workers, args.tenants, args.mailboxes, args.latency_ms, azurite.port, Path(work))
                result["latency_ms"] = args.latency_ms
                results.append(result)
                print(
                    f"{workers:>8} {result['tenants']:>8} {result['wall_seconds']:>8} "
                    f"{result['tenants_per_minute']:>12} {result['peak_rss_mb_per_worker']!s:>24} "
                    f"(failed: {result['failed']})",
                    flush=True,
                )
        finally:
            azurite.stop()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
