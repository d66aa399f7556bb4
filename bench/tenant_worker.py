"""One worker of bench/tenants_bench.py: what one Function App instance does with the audit-tenants queue, played
with real Azurite queue calls: take a message, run that tenant (shared.runtime.fanout.run_message, the queue
function's body), delete it; until the queue stays empty. Writes its counts and peak memory to argv[2]."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.runtime import fanout  # noqa: E402
from tests.support.queues import Queues  # noqa: E402


def main(port: int, out: str, queue: str) -> int:
    queues = Queues(port)
    done = failed = 0
    started = time.perf_counter()
    last_done = time.time()
    idle_since = None
    while True:
        message = queues.get(queue, visibility_seconds=600)
        if message is None:
            idle_since = idle_since or time.perf_counter()
            if time.perf_counter() - idle_since > 2:  # the dispatcher enqueued everything before we started
                break
            time.sleep(0.1)
            continue
        idle_since = None
        try:
            status = fanout.run_message("check", message.text, message.dequeue_count, os.environ)
            done += status != "Rejected"
        except fanout.TenantRunFailed:
            failed += 1
        queues.delete(queue, message)
        last_done = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(out).write_text(
        json.dumps(
            {
                "tenants": done,
                "failed": failed,
                "busy_seconds": round(time.perf_counter() - started, 2),
                "last_done": last_done,
                "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
