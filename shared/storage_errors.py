"""Why an Azure Storage call failed, in words safe to log, show and send: never a key, SAS or request URL query."""

from __future__ import annotations

import re

_SECRETISH = re.compile(r"(?i)(accountkey|sharedaccesssignature|sig|signature)=[^;&\s'\"]+")


def storage_reason(exc: Exception, *, role: str) -> str:
    """What went wrong, from the exception's safe parts only (never its message: it may quote the request).

    `role` names the data role an identity needs for this use, for the 403 hint (e.g. a Storage Blob Data role)."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)  # StorageErrorCode members carry the service's own text
    if isinstance(exc, HttpResponseError) and status:
        hint = {
            401: " (authentication failed)",
            403: f" (refused: a wrong account key or SAS, an identity without {role}, or network rules that exclude "
            "this caller)",
        }.get(status, "")
        return f"HTTP {status}{f' {code}' if code else ''}{hint}"
    if isinstance(exc, ClientAuthenticationError):
        return f"could not get a token for the storage account ({scrub(getattr(exc, 'message', '') or '')})"
    if isinstance(exc, ServiceRequestError):
        cause = _root_cause(exc)
        detail = getattr(cause, "strerror", None) or type(cause).__name__
        return f"storage endpoint unreachable ({detail}); is the storage account (or Azurite) running?"
    return type(exc).__name__


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "inner_exception", None) or exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def scrub(text: str) -> str:
    """A text with URL queries and key=value secrets masked, bounded."""
    text = re.sub(r"\?\S*", "?[redacted]", text)
    return _SECRETISH.sub(lambda m: f"{m.group(1)}=[redacted]", text)[:300]
