"""What the watch remembers for the evidence report: the alerts it raised and its last passes, and the summary.

The state's alert claims (`claim_alerts`) keep only ids, which is all the once-only rule needs; an auditor reading
the evidence wants the alerts themselves. So every new alert is also kept, with what the `--json` alert list shows,
in the store's key/value area under `alert/<day raised>/<alert id>` (kept ALERT_DETAIL_DAYS), and each pass leaves
its outcome under `watch/last-pass` (and `watch/last-ok-pass` when it had no error). `summary` reads them back with
the checkpoints, outstanding failures and gaps into the evidence document's `activity` section
(shared.evidence.layout renders it).

A detail too large for one value is shortened (record ids beyond MAX_RECORD_IDS are counted, not listed); the alert
itself is never dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from shared.activity.detections.base import Alert
from shared.activity.state import VALUE_MAX_BYTES, StateStore, decode_time, encode_time, utc

ALERT_PREFIX = "alert/"
LAST_RUN_KEY = "watch/last-pass"
LAST_OK_RUN_KEY = "watch/last-ok-pass"
PRUNED_DAY_KEY = "history/pruned-day"
ALERT_DETAIL_DAYS = 35  # the report shows 7 days; a month is kept for the next report's look back
REPORT_DAYS = 7
MAX_RECORD_IDS = 100
MAX_REPORTED_ALERTS = 500  # the report lists the newest; the count says how many there were
# The thresholds of the alert rules (infra/alerts): the evidence says "needs attention" where an alert would fire.
STALE_PASS = timedelta(hours=1)
LAG_ATTENTION_MINUTES = 360.0


def alert_key(alert_id: str, raised: datetime) -> str:
    return f"{ALERT_PREFIX}{utc(raised):%Y-%m-%d}/{alert_id}"


def alert_detail(alert: Alert, raised: datetime) -> dict[str, Any]:
    """The alert as the watch's `--json` lists it, plus when it was raised; record ids capped (counted)."""
    document = alert.as_json()
    ids = list(alert.record_ids)
    document["record_ids"] = ids[:MAX_RECORD_IDS]
    document["record_count"] = len(ids)
    document["raised_at"] = encode_time(raised)
    return document


def record_alerts(store: StateStore, tenant: str, alerts: Sequence[Alert], raised: datetime) -> None:
    """Keep the details of newly claimed alerts (call after the claim: only new alerts are kept)."""
    for alert in alerts:
        detail = alert_detail(alert, raised)
        text = json.dumps(detail, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode("utf-8")) > VALUE_MAX_BYTES:  # a huge message: keep the alert, shorten its text
            detail |= {"message": detail["message"][:2000] + " …", "record_ids": detail["record_ids"][:10]}
            text = json.dumps(detail, ensure_ascii=False, separators=(",", ":"))
        store.put_value(tenant, alert_key(alert.id, raised), text)


def record_pass(store: StateStore, tenant: str, outcome: Mapping[str, Any], finished: datetime) -> None:
    """Keep the pass's outcome (`outcome`: JSON-ready, at least `status`); prune old alert details once a day."""
    document = {**outcome, "finished_at": encode_time(finished)}
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str)
    store.put_value(tenant, LAST_RUN_KEY, text)
    if document.get("status") != "Error":
        store.put_value(tenant, LAST_OK_RUN_KEY, text)
    _prune(store, tenant, finished)


def _prune(store: StateStore, tenant: str, now: datetime) -> None:
    today = f"{utc(now):%Y-%m-%d}"
    if store.value(tenant, PRUNED_DAY_KEY) == today:
        return
    oldest = f"{utc(now) - timedelta(days=ALERT_DETAIL_DAYS):%Y-%m-%d}"
    for key in store.values(tenant, ALERT_PREFIX):
        if key[len(ALERT_PREFIX) :].split("/", 1)[0] < oldest:
            store.delete_value(tenant, key)
    store.put_value(tenant, PRUNED_DAY_KEY, today)


def summary(
    store: StateStore, tenant: str, content_types: Sequence[str], now: datetime, *, source: str
) -> dict[str, Any]:
    """The evidence document's `activity` section: feed health and the alerts raised in the last REPORT_DAYS.

    `source` names the state read (a path or a table name; never a connection string). StateError propagates:
    the caller reports an unreadable state as such, never as "no alerts"."""
    now = utc(now)
    since = now - timedelta(days=REPORT_DAYS)
    last_pass = _json(store.value(tenant, LAST_RUN_KEY))
    last_ok = _json(store.value(tenant, LAST_OK_RUN_KEY))
    feeds = []
    for content_type in content_types:
        checkpoint = store.checkpoint(tenant, content_type)
        started = store.subscription_started(tenant, content_type)
        feeds.append(
            {
                "content_type": content_type,
                "listed_until": encode_time(checkpoint) if checkpoint else None,
                "subscription_started": encode_time(started) if started else None,
            }
        )
    failures = [
        {
            "content_type": failed.content_type,
            "content_id": failed.content_id,
            "attempts": failed.attempts,
            "last_error": failed.last_error,
            "first_failed": encode_time(failed.first_failed),
        }
        for failed in store.failures(tenant)
    ]
    gaps = [
        {
            "content_type": gap.content_type,
            "reason": gap.reason,
            "start": encode_time(gap.start),
            "end": encode_time(gap.end),
            "recorded": encode_time(gap.recorded),
            "message": gap.message,
        }
        for gap in store.gaps(tenant, since)
    ]
    alerts = _recent_alerts(store, tenant, since, now)
    section: dict[str, Any] = {
        "source": source,
        "generated_at": encode_time(now),
        "window_days": REPORT_DAYS,
        "last_pass": last_pass,
        "last_ok_pass_at": last_ok.get("finished_at") if last_ok else None,
        "feeds": feeds,
        "failed_blobs": failures,
        "gaps": gaps,
        "alerts_total": len(alerts),
        "alerts_by_severity": dict(Counter(str(alert.get("severity")) for alert in alerts)),
        "alerts_by_detection": dict(sorted(Counter(str(alert.get("detection")) for alert in alerts).items())),
        "alerts": alerts[:MAX_REPORTED_ALERTS],
    }
    section["health"], section["health_reasons"] = _health(section, now)
    return section


def _recent_alerts(store: StateStore, tenant: str, since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Alerts raised since `since`, newest event first (one prefix read per day of the window)."""
    found: list[dict[str, Any]] = []
    day = since.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= now:
        for text in store.values(tenant, f"{ALERT_PREFIX}{day:%Y-%m-%d}/").values():
            if (detail := _json(text)) is not None and _time(detail.get("raised_at"), since) >= since:
                found.append(detail)
        day += timedelta(days=1)
    return sorted(found, key=lambda alert: (str(alert.get("time")), str(alert.get("id"))), reverse=True)


def _health(section: Mapping[str, Any], now: datetime) -> tuple[str, list[str]]:
    """OK, Attention (with the reasons an alert rule would also fire for) or Unknown (the watch never ran)."""
    last = section["last_pass"]
    if not isinstance(last, Mapping):
        return "Unknown", ["no watch pass is recorded in this state: the watch has not run (or not with it)"]
    reasons = []
    finished = _time(last.get("finished_at"), None)
    if finished is None or now - finished > STALE_PASS:
        reasons.append(f"the last watch pass was {_ago(finished, now)} (expected every 10 minutes)")
    if last.get("status") == "Error":
        reasons.append(f"the last watch pass failed: {last.get('error') or 'no reason recorded'}")
    lag = last.get("feed_lag_minutes")
    if isinstance(lag, (int, float)) and lag > LAG_ATTENTION_MINUTES:
        reasons.append(f"the feed lagged {lag:g} minutes behind (alert threshold {LAG_ATTENTION_MINUTES:g})")
    if section["failed_blobs"]:
        reasons.append(f"{len(section['failed_blobs'])} content blob(s) could not be read yet (retried each pass)")
    if section["gaps"]:
        reasons.append(f"{len(section['gaps'])} gap(s) in the last {REPORT_DAYS} days: content that was lost")
    return ("Attention" if reasons else "OK"), reasons


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "at an unknown time"
    hours = (now - moment).total_seconds() / 3600
    return f"{hours:.1f} hours ago" if hours < 48 else f"{hours / 24:.1f} days ago"


def _time[T](text: Any, default: T) -> datetime | T:
    if not isinstance(text, str):
        return default
    try:
        return decode_time(text)
    except ValueError:
        return default


def _json(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
