"""The feed's errors as the ingest pass sees them.

The feed client (shared/activity/feed.py) raises these; the ingest pass catches them. `FeedContentExpired` is the
client's answer to AF20051 (content older than 7 days, or otherwise gone for good): a named gap, not a retry.
Messages are built from safe parts only (status, error code, content type): never a token or a blob URL's query.
"""

from __future__ import annotations


class FeedError(Exception):
    """The feed could not answer (after the client's own retries): listing, subscription or blob."""


class FeedContentExpired(FeedError):
    """A blob that can no longer be read (AF20051: it expired before it was read)."""
