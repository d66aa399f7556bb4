"""One batch through every detection: (records, baseline, context) → (alerts, suppressed, recorded, new baseline).

Pure: nothing is read or written. Records are judged in event-time order whatever order they arrived in; each
detection sees the baseline as it was before the batch and returns new values for its own part of it. Alerts of
the product's own writes are recorded, not alerted (except `audit-tampering`: a write that weakens auditing is
always an alert); alerts a valid written exception covers are suppressed, with the exception that covered them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.activity.baseline import Baseline
from shared.activity.detections.base import Alert, Context, Detection
from shared.activity.detections.registry import DETECTIONS
from shared.activity.records import AuditRecord
from shared.config.exception_register import DetectionException

ALWAYS_ALERTED = frozenset({"audit-tampering"})


@dataclass(frozen=True)
class Evaluation:
    alerts: tuple[Alert, ...]
    suppressed: tuple[tuple[Alert, DetectionException], ...]
    recorded: tuple[Alert, ...]  # the product's own writes
    baseline: Baseline


def evaluate_batch(
    records: Iterable[AuditRecord],
    baseline: Baseline,
    context: Context,
    detections: Sequence[Detection] = DETECTIONS,
) -> Evaluation:
    unique: dict[str, AuditRecord] = {}
    for record in records:
        unique.setdefault(record.id, record)
    ordered = sorted(unique.values(), key=lambda record: (record.creation_time, record.id))
    if not ordered:
        return Evaluation((), (), (), baseline)
    before = baseline.observed(ordered[0].creation_time, ordered[-1].creation_time)
    updates: dict[str, Any] = {}
    raised: list[Alert] = []
    for detection in detections:
        outcome = detection.evaluate(ordered, before, context)
        raised.extend(outcome.alerts)
        for name, value in outcome.updates.items():
            if name not in detection.owns:
                raise ValueError(f"{detection.id} updated {name}, which it does not own")
            updates[name] = value
    alerts: list[Alert] = []
    suppressed: list[tuple[Alert, DetectionException]] = []
    recorded: list[Alert] = []
    seen: set[str] = set()
    for alert in raised:
        if alert.id in seen:
            continue
        seen.add(alert.id)
        if alert.by_product and alert.detection not in ALWAYS_ALERTED:
            recorded.append(alert)
        elif (entry := _exception_for(alert, context)) is not None:
            suppressed.append((alert, entry))
        else:
            alerts.append(alert)
    learned = replace(before, **updates).pruned(context.policy.baseline_days)
    return Evaluation(tuple(alerts), tuple(suppressed), tuple(recorded), learned)


def _exception_for(alert: Alert, context: Context) -> DetectionException | None:
    entry = context.exceptions.suppressing(
        alert.detection, alert.actor.lower(), (alert.mailbox or "").lower() or None, alert.target
    )
    if entry is None or entry.expires < alert.time.date():
        return None  # an exception that had expired by the event's day covers nothing
    return entry
