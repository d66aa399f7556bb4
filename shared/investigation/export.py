"""One export: run the slicing plan against Graph, stream the records to a file, write the manifest.

Records are written as they arrive (JSON Lines or CSV), de-duplicated by id across slices: the ids written so
far are kept in memory (a set of strings, about 100 bytes a record; a 1,000,000-record export holds ~100 MB of
ids), the records themselves never. The manifest is written at the end, also after an error or Ctrl-C (then it
says `interrupted`), so the directory always says what it holds.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from shared.graph.errors import GraphAuthError, GraphError
from shared.investigation.client import AuditQueryClient, explain
from shared.investigation.manifest import ExportState, OutputFile, build_manifest
from shared.investigation.request import SearchRequest, Window, format_time, query_body
from shared.investigation.rows import COLUMNS, csv_row, json_line, matches_mailboxes, record_id
from shared.investigation.slicing import Plan, SliceResult, run_plan

MANIFEST = "manifest.json"
RECORD_FILES = {"jsonl": "records.jsonl", "csv": "records.csv"}
QUERY_ATTEMPTS = 2  # a query that fails is submitted once more before its slice counts as missing
Progress = Callable[[str], None]


def existing_outputs(out_dir: Path) -> list[str]:
    """The export files already in `out_dir` (an export never overwrites evidence)."""
    names = [MANIFEST, *RECORD_FILES.values()]
    return [name for name in names if (out_dir / name).exists()]


class RecordWriter:
    """Appends records to the output file, skipping ids already written; counts into `state.counts`."""

    def __init__(self, path: Path, output_format: str, state: ExportState) -> None:
        self.path = path
        self.format = output_format
        self.state = state
        self.seen: set[str] = set()
        self._handle: IO[str] = open(path, "x", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._handle) if output_format == "csv" else None
        if self._csv is not None:
            self._csv.writerow(COLUMNS)

    def write(self, record: dict[str, Any]) -> None:
        counts = self.state.counts
        counts.received += 1
        if not matches_mailboxes(record, self.state.request.mailboxes):
            counts.not_matching_mailbox += 1
            return
        rid = record_id(record)
        if rid is None:
            counts.without_id += 1
        elif rid in self.seen:
            counts.duplicates += 1
            return
        else:
            self.seen.add(rid)
        if self._csv is not None:
            self._csv.writerow(csv_row(record))
        else:
            self._handle.write(json_line(record))
        counts.written += 1

    def close(self) -> OutputFile:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return OutputFile(self.path.name, sha256_of(self.path), self.path.stat().st_size, self.state.counts.written)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Exporter:
    """Runs one export; `run()` never raises for Graph trouble (see `state.error` and the plan's missing slices)."""

    def __init__(
        self,
        client: AuditQueryClient,
        state: ExportState,
        out_dir: Path,
        *,
        min_slice: timedelta,
        progress: Progress = lambda _line: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.state = state
        self.out_dir = out_dir
        self.min_slice = min_slice
        self.progress = progress
        self.clock = clock
        self._queries = 0
        self._began = time.monotonic()
        self.writer: RecordWriter | None = None

    def run(self) -> dict[str, Any]:
        """The export, start to end; returns the manifest (also written to out_dir/manifest.json)."""
        state = self.state
        try:
            self.writer = RecordWriter(self.out_dir / RECORD_FILES[state.output_format], state.output_format, state)
            run_plan(state.request.window, self._run_slice, self.min_slice, state.plan)
        except KeyboardInterrupt:
            state.interrupted = True
            self.progress("Interrupted: writing the manifest of what was exported so far.")
        except (GraphError, GraphAuthError) as exc:  # an error no slice can get past (permission, API missing)
            state.error = explain(exc, "search the audit log")
        except OSError as exc:
            state.error = f"--out: cannot write {self.out_dir}: {exc.strerror or type(exc).__name__}"
        finally:
            if self.writer is not None:
                state.files.append(self.writer.close())
            state.finished = self.clock()
        manifest = build_manifest(state)
        self._write_manifest(manifest)
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        try:
            path = self.out_dir / MANIFEST
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(manifest, handle, indent=2)
                handle.write("\n")
        except OSError as exc:
            # Without its manifest the export is no evidence: never complete, never exit 0.
            manifest["error"] = f"--out: cannot write the manifest: {exc.strerror or type(exc).__name__}"
            manifest.update(complete=False, status="error", exit_code=2)

    def _run_slice(self, window: Window, splittable: bool) -> SliceResult:
        result = SliceResult(window)
        for attempt in range(1, QUERY_ATTEMPTS + 1):
            result = SliceResult(window, attempts=attempt)
            self._query(result, splittable)
            if result.status != "failed":
                break
            self.progress(f"query {result.query_id} for {window} failed; submitting it again")
        return result

    def _query(self, result: SliceResult, splittable: bool) -> None:
        """Create, wait for and (unless it will be split anyway) read one query into `result`."""
        window = result.window
        self._queries += 1
        name = f"mailbox-audit-guard search {format_time(self.state.started)} #{self._queries}"
        try:
            created = self.client.create(query_body(self.state.request, window, name))
        except GraphError as exc:
            if fatal(exc):
                raise
            result.status, result.error = "error", explain(exc, f"create the query for {window}")
            return
        result.query_id = created.id
        try:
            status = self.client.wait(created.id)
        except GraphError as exc:
            if fatal(exc):
                raise
            result.status, result.error = "error", explain(exc, f"read the status of query {created.id}")
            return
        result.status, result.announced, result.limit_exceeded = status.status, status.announced, status.limit_exceeded
        if status.status != "succeeded":
            result.error = f"the query ended {status.status}"
            return
        if status.limit_exceeded and splittable:
            self.progress(f"query {created.id} for {window}: over its record-count limit; splitting the window")
            return
        assert self.writer is not None
        try:
            for page in self.client.record_pages(created.id):
                for record in page:
                    self.writer.write(record)
                result.received += len(page)
                self._report(window)
        except GraphError as exc:
            if fatal(exc):
                raise
            result.status, result.error = "error", explain(exc, f"read the records of query {created.id}")
            return
        result.read = True
        if result.short:
            self.progress(f"query {created.id} for {window}: {result.received} records of {result.announced} announced")
        self._report(window, done=True)

    def _report(self, window: Window, *, done: bool = False) -> None:
        counts = self.state.counts
        elapsed = max(time.monotonic() - self._began, 1e-6)
        what = "done" if done else "reading"
        self.progress(
            f"query {self._queries} ({window}) {what}: {counts.written} records written so far, "
            f"{counts.received / elapsed:.0f} records/s"
        )


def fatal(error: GraphError) -> bool:
    """An error no other slice can get past: the export ends (permission, token, no such API, auditing off)."""
    return (
        error.status in (401, 403)
        or (error.status == 404 and error.method == "POST")
        or ("AuditingDisabledTenant" in f"{error.code} {error.message}")
    )


def new_state(
    request: SearchRequest, *, tenant_id: str, graph_endpoint: str, api_version: str, output_format: str, now: datetime
) -> ExportState:
    return ExportState(
        request=request,
        tenant_id=tenant_id,
        graph_endpoint=graph_endpoint,
        api_version=api_version,
        output_format=output_format,
        started=now,
        plan=Plan(),
    )
