"""The detections' baseline in the state store: one small document per user, loaded and saved per batch.

The detections judge one `Baseline` (shared.activity.baseline); the state store keeps per-user documents
(`StateStore.baseline(tenant, user_key)`), each at most BASELINE_MAX_BYTES. This module cuts the one into the other
and back, so a batch loads only the users (and forwarding destinations) its records name, and memory and the size of
each document stay flat in the size of the tenant:

- `~tenant`: the event-time span seen (`history_start`, `latest`): the learning period is the tenant's history;
- `user:<actor>`: everything keyed by that actor (countries, logins, deletes, grants, and the (actor, mailbox)
  pairs of send-as and non-owner access);
- `forward:<address>`: the mailboxes that forwarded to one external destination (mail-forwarding's "several
  mailboxes forward to one destination").

Every document is a version-1 `Baseline.to_json()` holding only its own part. Pure: the store is passed in.

A pass keeps the documents it has read or written in a `ShardCache` (write-through, bounded), so an actor who appears
in every blob of a pass is read from the store once, not once per blob: the store stays the truth (every change is
written before the blob counts as processed), the cache only spares the re-reading and re-parsing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.activity.baseline import Baseline
from shared.activity.detections.mail_forwarding import forwarding_addresses
from shared.activity.records import AuditRecord
from shared.activity.state import KEY_MAX_CHARS, BaselineTooLarge, StateError, StateStore

TENANT_KEY = "~tenant"
USER_PREFIX = "user:"
FORWARD_PREFIX = "forward:"
_PER_ACTOR = ("countries", "deletes", "logins", "grants")
_PER_PAIR = ("send_as_pairs", "access_pairs")
_MERGED = (*_PER_ACTOR, *_PER_PAIR, "forwarding")
_EMPTY = Baseline()


def user_key(actor: str) -> str:
    return _bounded(USER_PREFIX, actor)


def forward_key(address: str) -> str:
    return _bounded(FORWARD_PREFIX, address)


def _bounded(prefix: str, name: str) -> str:
    """`prefix + name`, or a digest of the name when that would be longer than a store key may be."""
    key = f"{prefix}{name}"
    if len(key) <= KEY_MAX_CHARS:
        return key
    return f"{prefix}#{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()}"


def keys_for(records: Iterable[AuditRecord]) -> set[str]:
    """The documents a batch of records can read or change: its actors' and its forwarding destinations'."""
    keys = {TENANT_KEY}
    for record in records:
        if record.actor:
            keys.add(user_key(record.actor))
        keys.update(forward_key(address) for address in forwarding_addresses(record))
    return keys


@dataclass(frozen=True)
class Loaded:
    """The batch's part of the baseline, and the documents it came from (to write back only what changed)."""

    baseline: Baseline
    documents: Mapping[str, dict[str, Any] | None]
    parts: Mapping[str, Baseline | None] = field(default_factory=dict)  # each document parsed


Entry = tuple[dict[str, Any] | None, Baseline | None]  # the document as stored (None: none yet) and its parse


class ShardCache:
    """The documents one pass has read or written, by key, the least recently used dropped beyond `max_units`
    (memory stays bounded in a tenant of any size: a unit is about one remembered entry, a sign-in or an hour of
    deletes, so the default holds some 50-60 MB). Parsed baselines are shared, never changed in place: the detections
    and `split` build new objects for what they change."""

    def __init__(self, max_units: int = 100_000) -> None:
        self.max_units = max_units
        self.units = 0
        self._entries: OrderedDict[str, tuple[Entry, int]] = OrderedDict()

    def get(self, key: str) -> Entry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: str, entry: Entry) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.units -= old[1]
        cost = _units(entry[1])
        self._entries[key] = (entry, cost)
        self.units += cost
        while self.units > self.max_units and len(self._entries) > 1:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.units -= dropped


def _units(part: Baseline | None) -> int:
    """About how many remembered entries a part holds (its size in memory, roughly)."""
    if part is None:
        return 1
    return (
        1
        + sum(len(getattr(part, name)) for name in _MERGED)
        + sum(
            len(seen)
            for group in (part.logins, part.countries, part.deletes, part.forwarding)
            for seen in group.values()
        )
    )


def load(store: StateStore, tenant: str, keys: Iterable[str], cache: ShardCache | None = None) -> Loaded:
    """The documents for `keys` merged into one Baseline; StateError when one is damaged (refused, not half-read)."""
    documents: dict[str, dict[str, Any] | None] = {}
    parsed: dict[str, Baseline | None] = {}
    parts: list[Baseline] = []
    for key in sorted(set(keys)):
        entry = cache.get(key) if cache is not None else None
        if entry is None:
            document = store.baseline(tenant, key)
            try:
                entry = (document, Baseline.from_json(document) if document is not None else None)
            except ValueError as exc:
                raise StateError(f"the stored baseline {key!r} is damaged ({exc}); remove it to relearn") from None
            if cache is not None:
                cache.put(key, entry)
        documents[key], parsed[key] = entry
        if entry[1] is not None:
            parts.append(entry[1])
    return Loaded(merge(parts), documents, parsed)


def merge(parts: Iterable[Baseline]) -> Baseline:
    """One Baseline from its parts (their keys never overlap; a later part wins if they do). Linear in the entries:
    a batch may name thousands of users."""
    starts: list[datetime] = []
    latests: list[datetime] = []
    merged: dict[str, dict[str, Any]] = {name: {} for name in _MERGED}
    for part in parts:
        if part.history_start is not None:
            starts.append(part.history_start)
        if part.latest is not None:
            latests.append(part.latest)
        for name, values in merged.items():
            values.update(getattr(part, name))
    return Baseline(history_start=min(starts) if starts else None, latest=max(latests) if latests else None, **merged)


def split(baseline: Baseline, keys: Iterable[str]) -> dict[str, Baseline]:
    """The baseline cut into the documents `keys` name (an entry whose key is not among them is dropped: it was
    never loaded, so it cannot have been learned here)."""
    wanted = set(keys)
    shards: dict[str, Baseline] = {key: Baseline() for key in wanted}
    if TENANT_KEY in wanted:
        shards[TENANT_KEY] = Baseline(history_start=baseline.history_start, latest=baseline.latest)
    for name in _PER_ACTOR:
        for actor, value in getattr(baseline, name).items():
            if (key := user_key(actor)) in wanted:
                getattr(shards[key], name)[actor] = value
    for name in _PER_PAIR:
        for pair, span in getattr(baseline, name).items():
            if (key := user_key(pair.split("\n", 1)[0])) in wanted:
                getattr(shards[key], name)[pair] = span
    for address, mailboxes in baseline.forwarding.items():
        if (key := forward_key(address)) in wanted:
            shards[key].forwarding[address] = mailboxes
    return shards


def save(store: StateStore, tenant: str, loaded: Loaded, learned: Baseline, cache: ShardCache | None = None) -> int:
    """Write back the documents the batch changed, in one store write where the backend allows; the number written.
    A user's document that outgrew the store's limit keeps its newest sign-ins (the oldest go first) rather than
    failing the pass."""
    empty = Baseline().to_json()
    changed: dict[str, tuple[dict[str, Any], Baseline]] = {}
    for key, shard in split(learned, loaded.documents).items():
        if _unchanged(shard, loaded.parts.get(key) or _EMPTY):
            continue  # the detections left every entry as loaded (or none, as none was): nothing to encode
        document = shard.to_json()
        if document != (loaded.documents.get(key) or empty):
            changed[key] = (document, shard)
    while changed:
        try:
            store.put_baselines(tenant, {key: document for key, (document, _) in changed.items()})
            break
        except BaselineTooLarge as exc:  # the store checks every size as it encodes, before writing anything
            if exc.key not in changed:
                raise
            changed[exc.key] = _shrunk(changed[exc.key][1], exc)
    if cache is not None:
        for key, entry in changed.items():
            cache.put(key, entry)
    return len(changed)


def _unchanged(shard: Baseline, part: Baseline) -> bool:
    """Whether `shard` holds exactly the loaded `part`'s entries, the very same objects (the detections and the
    pruning build new objects for whatever they change, never change one in place)."""
    if (shard.history_start, shard.latest) != (part.history_start, part.latest):
        return False
    for name in _MERGED:
        mine, loaded = getattr(shard, name), getattr(part, name)
        if not mine and not loaded:
            continue  # most users have most parts empty: the cheapest test first
        if mine.keys() != loaded.keys():
            return False
        for key, value in mine.items():
            if value is not loaded[key]:
                return False
    return True


def _shrunk(shard: Baseline, exc: BaselineTooLarge) -> tuple[dict[str, Any], Baseline]:
    """The shard with the older half of each user's sign-ins dropped; the error again when there is nothing left."""
    logins = {user: seen[len(seen) // 2 :] for user, seen in shard.logins.items() if len(seen) > 1}
    if not logins:
        raise exc
    smaller = replace(shard, logins={**shard.logins, **logins})
    return smaller.to_json(), smaller
