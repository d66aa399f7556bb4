"""`impossible-travel`: two successful sign-ins of one user too far apart for the time between them (handbook
§3.10): more than 500 km at more than `WATCH_TRAVEL_KMH` (default 900), by event time. Each sign-in is compared
with the user's nearest earlier and nearest later one, so records arriving out of order are judged where they
belong. Distances (haversine) need coordinates, i.e. a city database in `WATCH_GEOIP_DB`; with countries only
(the built-in data) the fallback is two different countries within 15 minutes."""

from __future__ import annotations

import bisect
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
    if context.geo is None:
        return Outcome()
    changed: dict[str, list[Login]] = {}
    fired: set[str] = set()
    alerts = []
    for record in sign_ins(records):
        location = context.locate(record)
        if location is None:
            continue
        user = record.actor
        logins = changed.get(user)
        if logins is None:
            logins = list(baseline.logins.get(user, ()))
        if any(login.record_id == record.id for login in logins):
            continue  # already judged (a duplicate the caller did not catch)
        login = Login(
            record.creation_time,
            record.id,
            str(record.client_ip),
            location.country,
            location.latitude,
            location.longitude,
        )
        times = [existing.time for existing in logins]
        position = bisect.bisect_right(times, login.time)
        neighbours = [logins[position - 1]] if position > 0 else []
        neighbours += [logins[position]] if position < len(logins) else []
        if baseline.learned(record.creation_time, context.policy.learning_days):
            for other in neighbours:
                verdict = _judge(other, login, context)
                key = alert_id(ID, (other.record_id, login.record_id))
                if verdict is None or key in fired:
                    continue
                fired.add(key)
                severity, why = verdict
                earlier, later = sorted((other, login), key=lambda item: item.time)
                alert = make_alert(
                    ID,
                    severity,
                    [record],
                    context,
                    f"{record.user_id} signed in from {earlier.country} ({earlier.ip}) at "
                    f"{earlier.time.isoformat()} and from {later.country} ({later.ip}) at {later.time.isoformat()}: "
                    f"{why}. Geolocation: {context.geo.source}, data of {context.geo.data_date}.",
                    country=location.country,
                    geo_data_date=context.geo.data_date,
                    key=(other.record_id, login.record_id),
                )
                alerts.append(replace(alert, record_ids=tuple(sorted({earlier.record_id, later.record_id}))))
        logins.insert(position, login)
        changed[user] = logins[-MAX_LOGINS_PER_USER:]
    updates = {"logins": {**baseline.logins, **{user: tuple(logins) for user, logins in changed.items()}}}
    return Outcome(tuple(alerts), updates if changed else {})


DETECTION = Detection(ID, "Impossible travel between sign-ins", "high", ("logins",), evaluate)
