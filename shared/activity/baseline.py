"""The per-user baseline the detections learn, as plain data that serialises to JSON (the state store persists it).

All times are event times (`CreationTime`), never the wall clock: a history backfill counts towards the learning
period, and records that arrive late or out of order land where they belong. Entries older than the baseline window
(counted back from the latest event seen) are pruned, so the state stays bounded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

VERSION = 1
MAX_LOGINS_PER_USER = 200  # sign-ins kept per user for impossible-travel (the newest win)
LOGIN_HORIZON = timedelta(hours=24)  # beyond a day apart, no travel is impossible
FORWARDING_WINDOW = timedelta(days=7)  # several mailboxes forwarding to one destination "within 7 days" (§3.3)

Span = tuple[datetime, datetime]  # first and last event time a key was seen


@dataclass(frozen=True)
class Login:
    """One successful sign-in, as impossible-travel needs it."""

    time: datetime
    record_id: str
    ip: str
    country: str
    latitude: float | None = None
    longitude: float | None = None

    def as_json(self) -> list[Any]:
        """The sign-in as a JSON list (computed once: a user's sign-ins are re-saved with every batch that names
        the user, up to MAX_LOGINS_PER_USER of them; do not change the list)."""
        return self._json

    @functools.cached_property
    def _json(self) -> list[Any]:
        return [_iso(self.time), self.record_id, self.ip, self.country, self.latitude, self.longitude]

    @classmethod
    def from_json(cls, value: Any) -> Login:
        time, record_id, ip, country, latitude, longitude = value
        return cls(
            _time(time),
            str(record_id),
            str(ip),
            str(country),
            None if latitude is None else float(latitude),
            None if longitude is None else float(longitude),
        )


@dataclass(frozen=True)
class Baseline:
    """What is normal, per user/actor. Detections never change it in place: each returns new values for its part."""

    history_start: datetime | None = None  # earliest event seen: the learning period counts from here
    latest: datetime | None = None  # latest event seen: the window is counted back from here
    countries: dict[str, dict[str, Span]] = field(default_factory=dict)  # user → country → span
    send_as_pairs: dict[str, Span] = field(default_factory=dict)  # "actor\nmailbox" → span
    access_pairs: dict[str, Span] = field(default_factory=dict)  # "actor\nmailbox" → span
    deletes: dict[str, dict[str, int]] = field(default_factory=dict)  # actor → hour (ISO) → items
    logins: dict[str, tuple[Login, ...]] = field(default_factory=dict)  # user → sign-ins by time
    grants: dict[str, datetime] = field(default_factory=dict)  # actor → last permission grant
    forwarding: dict[str, dict[str, datetime]] = field(default_factory=dict)  # destination → mailbox → last time

    def learned(self, when: datetime, learning_days: float) -> bool:
        """Whether `when` is past the learning period (measured in event time from the first event seen)."""
        return self.history_start is not None and when >= self.history_start + timedelta(days=learning_days)

    def observed(self, earliest: datetime, latest: datetime) -> Baseline:
        """The baseline with a batch's event-time span taken into history_start and latest."""
        start = earliest if self.history_start is None else min(self.history_start, earliest)
        end = latest if self.latest is None else max(self.latest, latest)
        return replace(self, history_start=start, latest=end)

    def pruned(self, baseline_days: float) -> Baseline:
        """Without what is older than the window (counted back from the latest event seen)."""
        if self.latest is None:
            return self
        cutoff = self.latest - timedelta(days=baseline_days)
        hour_cutoff = _hour(cutoff)
        login_cutoff = self.latest - LOGIN_HORIZON
        # An entry nothing was pruned from is kept as the same object: the state's save recognises an unchanged
        # user by identity and skips re-encoding that user's document (shared.activity.shards.save).
        countries = {
            user: _whole(seen, kept)
            for user, seen in self.countries.items()
            if (kept := {country: span for country, span in seen.items() if span[1] >= cutoff})
        }
        deletes = {
            actor: _whole(hours, kept_hours)
            for actor, hours in self.deletes.items()
            if (kept_hours := {hour: count for hour, count in hours.items() if hour >= hour_cutoff})
        }
        logins = {
            user: _whole(seen, kept_logins)
            for user, seen in self.logins.items()
            if (kept_logins := tuple(login for login in seen if login.time >= login_cutoff))
        }
        forward_cutoff = self.latest - FORWARDING_WINDOW
        forwarding = {
            destination: _whole(mailboxes, kept_mailboxes)
            for destination, mailboxes in self.forwarding.items()
            if (kept_mailboxes := {mailbox: last for mailbox, last in mailboxes.items() if last >= forward_cutoff})
        }
        return replace(
            self,
            countries=countries,
            send_as_pairs={key: span for key, span in self.send_as_pairs.items() if span[1] >= cutoff},
            access_pairs={key: span for key, span in self.access_pairs.items() if span[1] >= cutoff},
            deletes=deletes,
            logins=logins,
            grants={actor: last for actor, last in self.grants.items() if last >= cutoff},
            forwarding=forwarding,
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only: strings, numbers, lists and objects."""
        return {
            "version": VERSION,
            "history_start": _iso(self.history_start) if self.history_start else None,
            "latest": _iso(self.latest) if self.latest else None,
            "countries": {
                user: {country: _span_json(span) for country, span in seen.items()}
                for user, seen in self.countries.items()
            },
            "send_as_pairs": {key: _span_json(span) for key, span in self.send_as_pairs.items()},
            "access_pairs": {key: _span_json(span) for key, span in self.access_pairs.items()},
            "deletes": {actor: dict(hours) for actor, hours in self.deletes.items()},
            "logins": {user: [login.as_json() for login in seen] for user, seen in self.logins.items()},
            "grants": {actor: _iso(last) for actor, last in self.grants.items()},
            "forwarding": {
                destination: {mailbox: _iso(last) for mailbox, last in mailboxes.items()}
                for destination, mailboxes in self.forwarding.items()
            },
        }

    @classmethod
    def from_json(cls, document: Any) -> Baseline:
        """The inverse of to_json; ValueError when the document is not one (a damaged state is refused, not
        half-read)."""
        try:
            if not isinstance(document, dict) or document.get("version") != VERSION:
                raise ValueError("not a baseline document of version 1")
            return cls(
                history_start=_time(document["history_start"]) if document.get("history_start") else None,
                latest=_time(document["latest"]) if document.get("latest") else None,
                countries={
                    str(user): {str(country): _span(span) for country, span in seen.items()}
                    for user, seen in document.get("countries", {}).items()
                },
                send_as_pairs={str(key): _span(span) for key, span in document.get("send_as_pairs", {}).items()},
                access_pairs={str(key): _span(span) for key, span in document.get("access_pairs", {}).items()},
                deletes={
                    str(actor): {str(hour): int(count) for hour, count in hours.items()}
                    for actor, hours in document.get("deletes", {}).items()
                },
                logins={
                    str(user): tuple(Login.from_json(login) for login in seen)
                    for user, seen in document.get("logins", {}).items()
                },
                grants={str(actor): _time(last) for actor, last in document.get("grants", {}).items()},
                forwarding={
                    str(destination): {str(mailbox): _time(last) for mailbox, last in mailboxes.items()}
                    for destination, mailboxes in document.get("forwarding", {}).items()
                },
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a baseline document ({type(exc).__name__})") from None


def _whole[T: (dict[Any, Any], tuple[Any, ...])](original: T, kept: T) -> T:
    """`original` itself when pruning kept all of it, else what was kept."""
    return original if len(kept) == len(original) else kept


def pair_key(actor: str, mailbox: str) -> str:
    return f"{actor}\n{mailbox}"


def is_new(span: Span | None, when: datetime, window: timedelta) -> bool:
    """Not seen in the window before `when` (a sighting after it counts as known: a backfill is not news)."""
    return span is None or span[1] < when - window


def widen(span: Span | None, when: datetime) -> Span:
    """A key's (first, last) with one more sighting, in any order of arrival."""
    return (when, when) if span is None else (min(span[0], when), max(span[1], when))


def hour_bucket(when: datetime) -> str:
    return _hour(when)


def _hour(when: datetime) -> str:
    return when.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:00Z")


def _iso(when: datetime) -> str:
    return when.isoformat()


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("time is not text")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("time without a zone")
    return parsed


def _span_json(span: Span) -> list[str]:
    return [_iso(span[0]), _iso(span[1])]


def _span(value: Any) -> Span:
    first, last = value
    return (_time(first), _time(last))
