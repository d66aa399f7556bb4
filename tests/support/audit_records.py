"""Audit records for the activity-watch tests: the handbook's fixtures (read from ../shared/fixtures, never copied)
with their time templates filled in, and builders of real-shaped records (field names and shapes of handbook
activity-feed.md §2.6; invented values)."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
TENANT = "0b5c1c1e-1111-2222-3333-444455556666"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
_TEMPLATE = re.compile(r"\{\{([^}]*)\}\}")
_OFFSET = re.compile(r"([+-])(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_counter = itertools.count(1)


def wire_time(when: datetime) -> str:
    """CreationTime as the feed sends it: UTC, no zone designator."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def fill(text: str, now: datetime = NOW) -> str:
    """`{{now-6h+5m}}`, `{{tenant}}`, `{{uuid}}`, `{{id:name}}` → values (an id is stable per name)."""

    def value(match: re.Match[str]) -> str:
        token = match.group(1).strip()
        if token.startswith("now"):
            when = now
            for sign, amount, unit in _OFFSET.findall(token[3:]):
                delta = timedelta(**{_UNITS[unit]: int(amount)})
                when = when + delta if sign == "+" else when - delta
            return wire_time(when)
        if token == "tenant":
            return TENANT
        if token == "uuid":
            return str(uuid.uuid4())
        if token.startswith("id:"):
            return str(uuid.uuid5(uuid.NAMESPACE_URL, token))
        raise ValueError(f"unknown template {token!r}")

    return _TEMPLATE.sub(value, text)


def fixture_records(now: datetime = NOW) -> dict[str, list[dict[str, Any]]]:
    """Every fixture record, by file: the elastic-beats NDJSON logs and the watch/*.json templates filled in."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((FIXTURES / "elastic-beats").glob("*.log")):
        lines = path.read_text(encoding="utf-8").splitlines()
        found[path.name] = [json.loads(line) for line in lines if line.strip()]
    for path in sorted((FIXTURES / "watch").glob("*.json")):
        found[path.name] = json.loads(fill(path.read_text(encoding="utf-8"), now))
    return found


def next_id() -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"record-{next(_counter)}"))


def admin(
    operation: str,
    parameters: dict[str, str] | str | None = None,
    *,
    user: str = "it-admin@contoso.com",
    when: datetime = NOW,
    ip: str = "[81.2.69.142]:51044",
    result: str = "True",
    user_type: int | str = 2,
    record_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An ExchangeAdmin (RecordType 1) record; `parameters` as the usual [{Name, Value}] list, or a string."""
    params: Any = parameters
    if isinstance(parameters, dict):
        params = [{"Name": name, "Value": value} for name, value in parameters.items()]
    record = {
        "CreationTime": wire_time(when),
        "Id": record_id or next_id(),
        "RecordType": 1,
        "Operation": operation,
        "OrganizationId": TENANT,
        "ResultStatus": result,
        "UserType": user_type,
        "UserId": user,
        "UserKey": user,
        "Workload": "Exchange",
        "ClientIP": ip,
        "ExternalAccess": False,
        "ObjectId": "EURPR01A002.prod.outlook.com/Microsoft Exchange Hosted Organizations/contoso.onmicrosoft.com/x",
        "OriginatingServer": "AM6PR01MB4535 (15.20.2729.032)\r\n",
        **extra,
    }
    if params is not None:
        record["Parameters"] = params
    return record


def mailbox(
    operation: str,
    *,
    user: str,
    owner: str,
    logon_type: int | str,
    when: datetime = NOW,
    ip: str = "81.2.69.142",
    record_type: int | str = 2,
    record_id: str | None = None,
    client: str = "Client=OWA;Action=ViaProxy",
    **extra: Any,
) -> dict[str, Any]:
    """A mailbox (RecordType 2, 3 or 50) record."""
    return {
        "CreationTime": wire_time(when),
        "Id": record_id or next_id(),
        "RecordType": record_type,
        "Operation": operation,
        "OrganizationId": TENANT,
        "ResultStatus": "Succeeded",
        "UserType": 0,
        "UserId": user,
        "UserKey": "10032001A1B2C3D4",
        "Workload": "Exchange",
        "ClientIPAddress": ip,
        "ClientInfoString": client,
        "MailboxOwnerUPN": owner,
        "MailboxGuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, owner)),
        "LogonType": logon_type,
        "InternalLogonType": 0,
        "ExternalAccess": False,
        **extra,
    }


def sign_in(
    user: str, when: datetime, ip: str, *, result: str = "Success", record_id: str | None = None
) -> dict[str, Any]:
    """An Entra ID sign-in (RecordType 15, UserLoggedIn)."""
    return {
        "CreationTime": wire_time(when),
        "Id": record_id or next_id(),
        "Operation": "UserLoggedIn",
        "OrganizationId": TENANT,
        "RecordType": 15,
        "ResultStatus": result,
        "UserKey": str(uuid.uuid5(uuid.NAMESPACE_DNS, user)),
        "UserType": 0,
        "Version": 1,
        "Workload": "AzureActiveDirectory",
        "ClientIP": ip,
        "ObjectId": "00000002-0000-0ff1-ce00-000000000000",
        "UserId": user,
        "AzureActiveDirectoryEventType": 1,
        "ApplicationId": "89bee1f7-5e6e-4d8a-9f3d-ecd601259da7",
    }
