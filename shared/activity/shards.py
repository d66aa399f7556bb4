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
from dataclasses import dataclass, replace
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


Entry = tuple[dict[str, Any] | None, Baseline | None]  # the document as stored (None: none yet) and its parse


class ShardCache:
    """The documents one pass has read or written, by key, the least recently used dropped beyond `max_entries`
    (memory stays bounded in a tenant of any size). Parsed baselines are shared, never changed in place: the
    detections and `split` build new dictionaries for what they change."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def load(store: StateStore, tenant: str, keys: Iterable[str], cache: ShardCache | None = None) -> Loaded:
    """The documents for `keys` merged into one Baseline; StateError when one is damaged (refused, not half-read)."""
    documents: dict[str, dict[str, Any] | None] = {}
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
        documents[key] = entry[0]
        if entry[1] is not None:
            parts.append(entry[1])
    return Loaded(merge(parts), documents)


def merge(parts: Iterable[Baseline]) -> Baseline:
    """One Baseline from its parts (their keys never overlap; a later part wins if they do)."""
    merged = Baseline()
    for part in parts:
        starts = [moment for moment in (merged.history_start, part.history_start) if moment is not None]
        latests = [moment for moment in (merged.latest, part.latest) if moment is not None]
        merged = replace(
            merged,
            history_start=min(starts) if starts else None,
            latest=max(latests) if latests else None,
            countries={**merged.countries, **part.countries},
            send_as_pairs={**merged.send_as_pairs, **part.send_as_pairs},
            access_pairs={**merged.access_pairs, **part.access_pairs},
            deletes={**merged.deletes, **part.deletes},
            logins={**merged.logins, **part.logins},
            grants={**merged.grants, **part.grants},
            forwarding={**merged.forwarding, **part.forwarding},
        )
    return merged


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
    """Write back the documents the batch changed; the number written. A user's document that outgrew the store's
    limit keeps its newest sign-ins (the oldest go first) rather than failing the pass."""
    written = 0
    empty = Baseline().to_json()
    for key, learned_shard in split(learned, loaded.documents).items():
        shard, document = learned_shard, learned_shard.to_json()
        if document == (loaded.documents.get(key) or empty):
            continue
        while True:
            try:
                store.put_baseline(tenant, key, document)  # the store checks the size as it encodes (once)
                break
            except BaselineTooLarge:
                logins = {user: seen[len(seen) // 2 :] for user, seen in shard.logins.items() if len(seen) > 1}
                if not logins:
                    raise
                shard = replace(shard, logins={**shard.logins, **logins})
                document = shard.to_json()
        if cache is not None:
            cache.put(key, (document, shard))
        written += 1
    return written
