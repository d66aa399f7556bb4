"""Small text helpers for messages shown to administrators."""

from __future__ import annotations


def shorten(text: str, limit: int) -> str:
    """Whitespace folded to single spaces, cut at `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(value: object, limit: int = 300) -> str:
    """The first line of a (library) message, bounded: enough to say what failed, never a whole dump."""
    text = str(value).strip()
    return text.splitlines()[0][:limit] if text else ""
