"""The export's manifest.json: what was asked, every query, what is missing, counts, checksums. Pure.

It is the evidence beside the records: the filters, every query id and its window, when the export started and
ended, how many records were received, written and skipped as duplicates, whether the export is complete (and if
not, which windows are missing, or that it was interrupted), the tool's version and the SHA-256 of each output file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import __version__
from shared.investigation.request import SearchRequest, format_time
from shared.investigation.slicing import Plan


@dataclass
class Counts:
    received: int = 0  # records read from Graph, duplicates included
    written: int = 0
    duplicates: int = 0  # same id already written (overlapping or re-run slices)
    not_matching_mailbox: int = 0  # dropped by --mailbox
    without_id: int = 0  # written, but not de-duplicable


@dataclass(frozen=True)
class OutputFile:
    name: str
    sha256: str
    bytes: int
    records: int


@dataclass
class ExportState:
    """What one export did; `status` decides the exit code."""

    request: SearchRequest
    tenant_id: str
    graph_endpoint: str
    api_version: str
    output_format: str
    started: datetime
    plan: Plan = field(default_factory=Plan)
    counts: Counts = field(default_factory=Counts)
    files: list[OutputFile] = field(default_factory=list)
    finished: datetime | None = None
    interrupted: bool = False
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and not self.interrupted and self.plan.complete

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.error is not None:
            return "error"
        return "complete" if self.complete else "incomplete"

    @property
    def exit_code(self) -> int:
        return 0 if self.complete else 2


def build_manifest(state: ExportState) -> dict[str, Any]:
    """The manifest document (also what --json prints)."""
    plan = state.plan
    missing = [m.as_json() for m in plan.missing]
    missing += [{**w.as_json(), "reason": "not run: the export was interrupted"} for w in plan.pending]
    return {
        "tool": "mailbox-audit-guard",
        "tool_version": __version__,
        "command": "search",
        "tenant_id": state.tenant_id,
        "graph_endpoint": state.graph_endpoint,
        "api_version": state.api_version,
        "filters": state.request.filters(),
        "export_started": format_time(state.started),
        "export_finished": format_time(state.finished) if state.finished else None,
        "status": state.status,
        "complete": state.complete,
        "interrupted": state.interrupted,
        "queries": [result.as_json(split=split) for result, split in plan.results],
        "missing": missing,
        "records": {
            "received": state.counts.received,
            "written": state.counts.written,
            "duplicates_skipped": state.counts.duplicates,
            "not_matching_mailbox": state.counts.not_matching_mailbox,
            "without_id": state.counts.without_id,
        },
        "format": state.output_format,
        "files": [{"name": f.name, "sha256": f.sha256, "bytes": f.bytes, "records": f.records} for f in state.files],
        "error": state.error,
        "exit_code": state.exit_code,
    }


def summary_lines(manifest: dict[str, Any]) -> Sequence[str]:
    """The end of a run for a person (stderr)."""
    records = manifest["records"]
    lines = [
        f"Search {manifest['status']}: {records['written']} records written ({records['duplicates_skipped']} "
        f"duplicates skipped) from {len(manifest['queries'])} queries; exit code {manifest['exit_code']}",
    ]
    lines += [f"  file {f['name']}: sha256 {f['sha256']} ({f['records']} records)" for f in manifest["files"]]
    lines += [f"  MISSING {m['start']} – {m['end']}: {m['reason']}" for m in manifest["missing"]]
    if manifest["error"]:
        lines.append(f"  Error: {manifest['error']}")
    return lines
