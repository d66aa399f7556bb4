"""Benchmark: the activity watch's throughput per stage, at growing numbers of audit records.

For each size a fresh child process runs one real watch pass (`shared.activity.watch.watch_pass`: the ingest pass,
the real SQLite state store, the parser, the baselines and all ten detections) over real-shaped records spread over
one day in blobs of 2,000, and reports records per second, the time per stage and its own peak memory. The blobs are
served in process by a generator, one at a time, so the feed's HTTP (measured by bench/run_bench.py for Exchange)
is left out and memory flat in the number of records would show. Target (issue 11): >= 20,000 records/s.

    python bench/watch_bench.py [--sizes 10000 100000 1000000] [--records-per-user 200] [--out bench/results/watch.json]

Users: one per `--records-per-user` records (default 200 a day, a busy mailbox user's MailItemsAccessed and
sign-ins), so the tenant grows with the records; `--users N` fixes their number instead (e.g. 500 users over 1M
records: 2,000 records and the full 200 remembered sign-ins each, the heaviest per-user history the baselines keep).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TENANT = "0b5c1c1e-1111-2222-3333-444455556666"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BLOB_SIZE = 2000
PUBLIC_IPS = ("81.2.69.142", "2.125.160.216", "89.160.20.112", "175.16.199.10", "216.160.83.56", "67.43.156.1")


@dataclass(frozen=True)
class Ref:
    content_type: str
    content_id: str
    content_uri: str
    created: datetime
    expiration: datetime | None


def wire(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def record(index: int, when: datetime, users: int) -> dict[str, Any]:
    """A real-shaped record (handbook activity-feed.md §2.6): mostly owners' mailbox access, some item operations,
    sign-ins and service noise; no tampering, so the pass does every stage's work without alerting."""
    user = f"user{index % users:06d}@contoso.com"
    base = {
        "Id": f"00000000-0000-4000-8000-{index:012d}",
        "CreationTime": wire(when),
        "OrganizationId": TENANT,
        "UserId": user,
        "UserKey": f"1003{index % users:012d}",
        "ResultStatus": "Succeeded",
        "ClientIP": f"{PUBLIC_IPS[(index // users) % 2]}:{40000 + index % 2000}",
    }
    kind = (index + index // users) % 10  # each user's records cycle through every kind (not one kind per user)
    if kind < 6:
        return {
            **base,
            "RecordType": 50,
            "Workload": "Exchange",
            "Operation": "MailItemsAccessed",
            "UserType": 0,
            "LogonType": 0,
            "MailboxOwnerUPN": user,
            "OperationCount": 3,
            "ClientInfoString": "Client=OWA",
        }
    if kind < 8:
        return {
            **base,
            "RecordType": 2,
            "Workload": "Exchange",
            "Operation": ("Update", "Move", "SoftDelete")[kind % 3],
            "UserType": 0,
            "LogonType": 0,
            "MailboxOwnerUPN": user,
            "ClientInfoString": "Client=REST",
        }
    if kind == 8:
        return {
            **base,
            "RecordType": 15,
            "Workload": "AzureActiveDirectory",
            "Operation": "UserLoggedIn",
            "UserType": 0,
            "ApplicationId": "00000002-0000-0ff1-ce00-000000000000",
        }
    return {
        **base,
        "RecordType": 1,
        "Workload": "Exchange",
        "Operation": "Set-Mailbox",
        "UserType": 3,
        "UserId": "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)",
        "ObjectId": user,
        "Parameters": [{"Name": "Identity", "Value": user}, {"Name": "RetentionPolicy", "Value": "Default"}],
    }


class GeneratedFeed:
    """Blobs of BLOB_SIZE records over the day before NOW, built when fetched (never all held at once)."""

    def __init__(self, count: int, users: int) -> None:
        self.count, self.users = count, max(1, users)
        self.blobs = (count + BLOB_SIZE - 1) // BLOB_SIZE
        self.step = timedelta(hours=23) / max(self.blobs, 1)

    def ensure_subscription(self, content_type: str, last_started: datetime | None, now: datetime) -> datetime | None:
        return None if last_started else now

    def list_content(self, content_type: str, start: datetime, end: datetime) -> Iterator[Ref]:
        for blob in range(self.blobs):
            created = NOW - timedelta(hours=23, minutes=30) + self.step * blob
            if start <= created < end:
                yield Ref(content_type, f"blob-{blob:06d}", f"https://manage.invalid/{blob}", created, None)

    def fetch(self, ref: Ref) -> list[dict[str, Any]]:
        blob = int(ref.content_id.split("-")[1])
        first = blob * BLOB_SIZE
        size = min(BLOB_SIZE, self.count - first)
        return [record(first + i, ref.created + timedelta(seconds=i % 60), self.users) for i in range(size)]


class Stages:
    """Wall time per stage, by wrapping the functions and store methods the pass calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def timed(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started

        return run


def one_size(count: int, state_path: Path, users: int) -> dict[str, Any]:
    """The pass at one size, in this process (the parent runs it in a child per size)."""
    from shared.activity import ingest, shards, watch
    from shared.activity.detections.base import Context
    from shared.activity.geo import open_geolocator
    from shared.activity.sqlite_store import SqliteStateStore

    stages = Stages()
    store = SqliteStateStore(state_path)
    for name in ("known_content", "known_records", "mark_processed", "claim_alerts"):
        setattr(store, name, stages.timed("de-dup and state", getattr(store, name)))
    watch.parse_record = stages.timed("parse", watch.parse_record)  # type: ignore[assignment]
    watch.evaluate_batch = stages.timed("detect", watch.evaluate_batch)  # type: ignore[assignment]
    shards.load = stages.timed("baselines (state)", shards.load)  # type: ignore[assignment]
    shards.save = stages.timed("baselines (state)", shards.save)  # type: ignore[assignment]
    feed = GeneratedFeed(count, users)
    feed.fetch = stages.timed("fetch (generate)", feed.fetch)  # type: ignore[method-assign]
    report = watch.WatchReport(tenant_id=TENANT)
    started, cpu_started = time.perf_counter(), time.process_time()
    watch.watch_pass(
        report,
        feed,
        store,
        Context(geo=open_geolocator(None)),
        content_types=["Audit.Exchange"],
        budget=ingest.RunBudget(seconds=3600, requests=10**6),
        first_lookback=timedelta(hours=24),
        now=NOW,
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    store.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    processed = report.records_processed
    assert processed == count, (processed, count, report.error)
    return {
        "records": count,
        "wall_seconds": round(wall, 2),
        "users": feed.users,
        "records_per_second": round(processed / wall),
        "cpu_seconds": round(cpu, 2),  # beside the wall time: tells a busy machine from a slow pass
        "alerts": len(report.alerts),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stages_seconds": {name: round(value, 2) for name, value in sorted(stages.seconds.items())},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=Path("bench/results/watch.json"))
    parser.add_argument("--records-per-user", type=int, default=200, help="records per user (sets the users)")
    parser.add_argument("--users", type=int, help="a fixed number of users instead")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args()
    if args.one:
        users = args.users or args.one // max(1, args.records_per_user)
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(one_size(args.one, Path(folder) / "watch.sqlite3", users)))
        return 0
    rows = []
    for size in args.sizes:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(size),
                "--records-per-user",
                str(args.records_per_user),
                *(["--users", str(args.users)] if args.users else []),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        stages = ", ".join(f"{name} {seconds} s" for name, seconds in row["stages_seconds"].items())
        print(
            f"{size:>9} records  {row['users']:>6} users  {row['wall_seconds']:>7} s ({row['cpu_seconds']} s CPU)  "
            f"{row['records_per_second']:>7} rec/s  "
            f"{row['peak_rss_mb']:>6} MB  ({stages})",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
