"""`unusual-location` (medium): a successful sign-in from a country the user has not used in the baseline window
(`WATCH_BASELINE_DAYS`), once the history covers the learning period (`WATCH_LEARNING_DAYS`, event time) and the
user has been seen that long (handbook §3.9). Private, loopback and Microsoft addresses are never locations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from shared.activity.baseline import Baseline, Span, is_new, widen
from shared.activity.detections.base import Context, Detection, Outcome, make_alert
from shared.activity.detections.signins import sign_ins
from shared.activity.records import AuditRecord

ID = "unusual-location"


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    if context.geo is None:
        return Outcome()
    window = timedelta(days=context.policy.baseline_days)
    learning = timedelta(days=context.policy.learning_days)
    changed: dict[str, dict[str, Span]] = {}
    alerts = []
    for record in sign_ins(records):
        location = context.locate(record)
        if location is None:
            continue
        user, when = record.actor, record.creation_time
        seen = changed.get(user) or dict(baseline.countries.get(user, {}))
        user_since = min((span[0] for span in seen.values()), default=None)
        if (
            is_new(seen.get(location.country), when, window)
            and baseline.learned(when, context.policy.learning_days)
            and user_since is not None
            and user_since <= when - learning
        ):
            usual = ", ".join(sorted(country for country, span in seen.items() if span[1] >= when - window)) or "none"
            alerts.append(
                make_alert(
                    ID,
                    "medium",
                    [record],
                    context,
                    f"{record.user_id} signed in ({record.operation}) from {location.country} ({record.client}), "
                    f"a country not used in the last {context.policy.baseline_days:g} days (usual: {usual}). "
                    f"Geolocation: {context.geo.source}, data of {context.geo.data_date}.",
                    country=location.country,
                    geo_data_date=context.geo.data_date,
                )
            )
        seen[location.country] = widen(seen.get(location.country), when)
        changed[user] = seen
    return Outcome(tuple(alerts), {"countries": {**baseline.countries, **changed}} if changed else {})


DETECTION = Detection(ID, "Sign-in from an unusual country", "medium", ("countries",), evaluate)
