"""`impossible-travel`: two successful sign-ins of one user too far apart for the time between them (handbook
§3.10): more than 500 km at more than `WATCH_TRAVEL_KMH` (default 900), by event time. Each sign-in is compared
with the user's nearest earlier and nearest later one, so records arriving out of order are judged where they
belong. Distances (haversine) need coordinates, i.e. a city database in `WATCH_GEOIP_DB`; with countries only
(the built-in data) the fallback is two different countries within 15 minutes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from shared.activity.baseline import MAX_LOGINS_PER_USER, Baseline, Login
from shared.activity.detections.base import Context, Detection, Outcome, Severity, alert_id, make_alert
from shared.activity.detections.signins import sign_ins
from shared.activity.geo import haversine_km
from shared.activity.records import AuditRecord

ID = "impossible-travel"
COUNTRY_FALLBACK = timedelta(minutes=15)


def _judge(a: Login, b: Login, context: Context) -> tuple[Severity, str] | None:
    """Why the pair is impossible, or None."""
    if a.ip == b.ip:
        return None
    hours = abs((b.time - a.time).total_seconds()) / 3600
    if a.latitude is not None and a.longitude is not None and b.latitude is not None and b.longitude is not None:
        km = haversine_km(a.latitude, a.longitude, b.latitude, b.longitude)
        if km <= context.policy.travel_min_km:
            return None
        speed = km / hours if hours > 0 else float("inf")
        if speed <= context.policy.travel_kmh:
            return None
        shown = "at the same time" if hours == 0 else f"in {hours * 60:.0f} minutes ({speed:.0f} km/h)"
        return ("high", f"{km:.0f} km apart {shown}, above {context.policy.travel_kmh:g} km/h")
    if a.country != b.country and abs(b.time - a.time) <= COUNTRY_FALLBACK:
        return (
            "medium",
            f"two countries within {abs(b.time - a.time).total_seconds() / 60:.0f} minutes (no coordinates in the "
            "geolocation data: set WATCH_GEOIP_DB to a city database to measure the distance)",
        )
    return None


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    """Each user's batch sign-ins are merged into their timeline first, then every successive pair that involves
    one of them is judged: the same alerts whatever order the records arrived in within a batch."""
    if context.geo is None:
        return Outcome()
    geo = context.geo
    arrived: dict[str, list[tuple[Login, AuditRecord]]] = {}
    for record in sign_ins(records):
        location = context.locate(record)
        if location is None:
            continue
        login = Login(
            record.creation_time,
            record.id,
            str(record.client_ip),
            location.country,
            location.latitude,
            location.longitude,
        )
        arrived.setdefault(record.actor, []).append((login, record))
    changed: dict[str, tuple[Login, ...]] = {}
    alerts = []
    for user, batch in arrived.items():
        known = {login.record_id for login in baseline.logins.get(user, ())}
        new = {login.record_id: record for login, record in batch if login.record_id not in known}
        timeline = sorted(
            [*baseline.logins.get(user, ()), *(login for login, _ in batch if login.record_id in new)],
            key=lambda login: (login.time, login.record_id),
        )
        fired: set[str] = set()
        for index, login in enumerate(timeline):
            judged = new.get(login.record_id)
            if judged is None or not baseline.learned(login.time, context.policy.learning_days):
                continue
            for other in (
                timeline[index - 1] if index > 0 else None,
                timeline[index + 1] if index + 1 < len(timeline) else None,
            ):
                if other is None:
                    continue
                key = alert_id(ID, (other.record_id, login.record_id))
                verdict = _judge(other, login, context)
                if verdict is None or key in fired:
                    continue
                fired.add(key)
                severity, why = verdict
                earlier, later = sorted((other, login), key=lambda item: (item.time, item.record_id))
                alert = make_alert(
                    ID,
                    severity,
                    [judged],
                    context,
                    f"{judged.user_id} signed in from {earlier.country} ({earlier.ip}) at "
                    f"{earlier.time.isoformat()} and from {later.country} ({later.ip}) at {later.time.isoformat()}: "
                    f"{why}. Geolocation: {geo.source}, data of {geo.data_date}.",
                    country=later.country,
                    geo_data_date=geo.data_date,
                    key=(other.record_id, login.record_id),
                )
                alerts.append(
                    replace(alert, time=earlier.time, record_ids=tuple(sorted({earlier.record_id, later.record_id})))
                )
        changed[user] = tuple(timeline[-MAX_LOGINS_PER_USER:])
    updates = {"logins": {**baseline.logins, **changed}}
    return Outcome(tuple(alerts), updates if changed else {})


DETECTION = Detection(ID, "Impossible travel between sign-ins", "high", ("logins",), evaluate)
