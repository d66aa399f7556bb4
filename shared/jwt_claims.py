"""The claims of a JWT access token, read WITHOUT verification: the service that receives the token verifies it.

For recognising and naming only (our own app id in audit records, the signed-in admin's tenant, what `diagnose`
shows), never to trust a caller. Pure; no token is ever logged from here.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT as a dict; {} when it is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode((parts[1] + "=" * (-len(parts[1]) % 4)).encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}
