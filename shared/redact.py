"""Defence in depth for logs: whatever a library logs, bearer tokens, JWTs and known secrets come out masked."""

from __future__ import annotations

import logging
import re

_TOKENISH = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
MASK = "[redacted]"


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites each record's message with secrets masked."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self._secrets = [secret for secret in (secrets or []) if secret and len(secret) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self._secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, masked, so the formatter prints the cleaned copy.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self._secrets)
            record.exc_info = None
        return True


def redact(text: str, secrets: list[str] | None = None) -> str:
    for secret in secrets or []:
        text = text.replace(secret, MASK)
    return _TOKENISH.sub(lambda m: (m.group(1) or "") + MASK, text)
