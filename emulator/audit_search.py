"""Microsoft Graph's audit log query API (`/{v1.0|beta}/security/auditLog/queries`) on the "graph" listener.

Queries run over the unified audit log as the emulator holds it: every record of the Management Activity feed's
blobs (the scenario's `audit_records` and Exchange's own admin records; one copy per `Id`), plus the scenario's
`audit_search.generate_records`, mapped to Graph's auditLogRecord shape (activity-feed.md §4.2). Status goes
notStarted → running → succeeded (or failed) as the query is polled; records are paged with `@odata.nextLink`
(`$skiptoken`); a query matching more than `record_count_limit` records succeeds with `isRecordCountLimitExceeded`
true and serves only the first `record_count_limit`. Throttling (429 + Retry-After) is a fault on listener "graph"
(docs/emulator-spec.md "Audit log query API").
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .activity import expand, parse_time

if TYPE_CHECKING:
    from .emulator import Emulator

AUDIT_SEARCH_DEFAULTS: dict[str, Any] = {
    "record_count_limit": 1_000_000,  # records one query returns at most (the service's documented limit)
    "polls_until_running": 1,  # status GETs answered notStarted before the query is running
    "polls_until_done": 2,  # status GETs before it is succeeded (or failed)
    "page_size": 100,  # records per page before an @odata.nextLink
    "fail_queries": 0,  # the first N queries end `failed`
    "undercount_queries": 0,  # the first N queries serve one record fewer than they announce
    "inclusive_end": False,  # True: a record at filterEndDateTime is in the window too (both halves get it)
    "generate_records": None,  # {"count", "start", "end", "operation", "user", "mailbox", "record_type", ...}
}
# Management Activity RecordType numbers -> Graph auditLogRecordType names (activity-feed.md §2.2).
RECORD_TYPES = {
    1: "ExchangeAdmin",
    2: "ExchangeItem",
    3: "ExchangeItemGroup",
    4: "SharePoint",
    6: "SharePointFileOperation",
    8: "AzureActiveDirectory",
    9: "AzureActiveDirectoryAccountLogon",
    15: "AzureActiveDirectoryStsLogon",
    18: "SecurityComplianceCenterEOPCmdlet",
    50: "ExchangeItemAggregated",
}
USER_TYPES = {0: "regular", 1: "reserved", 2: "admin", 3: "dcAdmin", 4: "system", 5: "application"}


def audit_search_settings(raw: Any) -> dict[str, Any]:
    """The scenario's `audit_search` block over AUDIT_SEARCH_DEFAULTS, validated."""
    given = dict(raw or {})
    unknown = sorted(k for k in given if k not in AUDIT_SEARCH_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown audit_search keys: {', '.join(unknown)}; expected some of {', '.join(AUDIT_SEARCH_DEFAULTS)}"
        )
    settings = {**AUDIT_SEARCH_DEFAULTS, **given}
    for key in ("record_count_limit", "page_size", "polls_until_done"):
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise ValueError(f"audit_search.{key} must be a positive whole number")
    generate = settings["generate_records"]
    if generate is not None and (not isinstance(generate, dict) or not isinstance(generate.get("count"), int)):
        raise ValueError("audit_search.generate_records must be an object with a whole number `count`")
    return settings


def graph_record(record: dict[str, Any]) -> dict[str, Any]:
    """A Management Activity API record as Graph's auditLogRecord: common fields on top, the record in auditData."""
    created = parse_time(record.get("CreationTime")) or datetime.now(UTC)
    user = str(record.get("UserId") or "")
    return {
        "id": str(record.get("Id") or uuid.uuid4()),
        "createdDateTime": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "auditLogRecordType": RECORD_TYPES.get(record.get("RecordType"), str(record.get("RecordType") or "")),  # type: ignore[arg-type]
        "operation": record.get("Operation"),
        "organizationId": record.get("OrganizationId"),
        "userType": USER_TYPES.get(record.get("UserType"), "regular"),  # type: ignore[arg-type]
        "userId": user,
        "service": record.get("Workload"),
        "objectId": record.get("ObjectId"),
        "userPrincipalName": user,
        "clientIp": record.get("ClientIP") or record.get("ClientIPAddress"),
        "administrativeUnits": [],
        "auditData": {"@odata.type": "#microsoft.graph.security.defaultAuditData", **record},
    }


def generated_records(spec: dict[str, Any] | None, tenant_id: str, now: datetime) -> list[dict[str, Any]]:
    """`count` mailbox records spread evenly over [start, end) (whole seconds), stable ids."""
    if not spec:
        return []
    start = parse_time(expand(spec.get("start", "{{now-2d}}"), now, tenant_id)) or now - timedelta(days=2)
    end = parse_time(expand(spec.get("end", "{{now-1d}}"), now, tenant_id)) or now - timedelta(days=1)
    count = int(spec["count"])
    step = (end - start) / max(count, 1)
    records = []
    for index in range(count):
        moment = (start + step * index).replace(microsecond=0)
        records.append(
            {
                "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/generated/{index}")),
                "RecordType": int(spec.get("record_type", 2)),
                "CreationTime": moment.strftime("%Y-%m-%dT%H:%M:%S"),
                "Operation": spec.get("operation", "MailItemsAccessed"),
                "OrganizationId": tenant_id,
                "UserType": 0,
                "UserId": spec.get("user", "adele.vance@contoso.onmicrosoft.com"),
                "Workload": "Exchange",
                "ClientIP": spec.get("client_ip", "198.51.100.7"),
                "MailboxOwnerUPN": spec.get("mailbox", "adele.vance@contoso.onmicrosoft.com"),
                "ResultStatus": "Succeeded",
            }
        )
    return records


@dataclass
class AuditQuery:
    id: str
    version: str
    body: dict[str, Any]
    records: list[dict[str, Any]]
    announced: int
    limit_exceeded: bool
    fails: bool
    polls: int = 0
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def status(self, settings: dict[str, Any]) -> str:
        if self.polls >= settings["polls_until_done"]:
            return "failed" if self.fails else "succeeded"
        return "running" if self.polls >= settings["polls_until_running"] else "notStarted"


class AuditSearchError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class AuditSearch:
    """The emulated audit log query service: its queries and their records. Guarded by its own lock."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.settings: dict[str, Any] = emulator.scenario["audit_search"]
        self.lock = threading.RLock()
        self.queries: dict[str, AuditQuery] = {}
        self._sequence = itertools.count()
        self._generated: list[dict[str, Any]] | None = None

    # ---- the log ---------------------------------------------------------------------------------------------

    def log_records(self) -> list[dict[str, Any]]:
        """Every record of the audit log, one per Id, oldest first, in Graph's shape."""
        feed = self.emu.activity
        if self._generated is None:
            self._generated = generated_records(self.settings["generate_records"], self.emu.tenant_id, feed.now())
        seen: dict[str, dict[str, Any]] = {}
        with feed.lock:
            raw = [record for blob in feed.blobs for record in blob.records]
        for record in [*raw, *self._generated]:
            mapped = graph_record(record)
            seen.setdefault(mapped["id"], mapped)
        return sorted(seen.values(), key=lambda r: (r["createdDateTime"], r["id"]))

    def _matches(self, record: dict[str, Any], body: dict[str, Any], start: datetime, end: datetime) -> bool:
        created = parse_time(record["createdDateTime"])
        if (
            created is None
            or created < start
            or (created >= end and not (self.settings["inclusive_end"] and created == end))
        ):
            return False

        def one_of(key: str, value: Any) -> bool:
            wanted = [str(v).lower() for v in body.get(key) or []]
            return not wanted or str(value or "").lower() in wanted

        if not (
            one_of("operationFilters", record["operation"])
            and one_of("userPrincipalNameFilters", record["userPrincipalName"])
            and one_of("recordTypeFilters", record["auditLogRecordType"])
            and one_of("ipAddressFilters", record["clientIp"])
        ):
            return False
        keyword = body.get("keywordFilter")
        return not keyword or str(keyword).lower() in json.dumps(record).lower()

    # ---- the API ---------------------------------------------------------------------------------------------

    def create(self, version: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise AuditSearchError(400, "BadRequest", "The request body must be an auditLogQuery object.")
        start = parse_time(body.get("filterStartDateTime"))
        end = parse_time(body.get("filterEndDateTime"))
        if start is None or end is None or end <= start:
            raise AuditSearchError(
                400, "BadRequest", "filterStartDateTime and filterEndDateTime are required, start before end."
            )
        with self.emu.lock:  # the live tenant: a Set-AdminAuditLogConfig through the emulator counts
            ingesting = self.emu.tenant.admin_audit_log_config.get("UnifiedAuditLogIngestionEnabled", True)
        if not ingesting:
            raise AuditSearchError(
                400, "BadRequest", "AuditingDisabledTenant: auditing is not enabled for this tenant."
            )
        with self.lock:
            index = next(self._sequence)
            matched = [r for r in self.log_records() if self._matches(r, body, start, end)]
            limit = self.settings["record_count_limit"]
            served = matched[:limit]
            if index < self.settings["undercount_queries"] and served:
                served = served[:-1]
            query = AuditQuery(
                id=str(uuid.uuid4()),
                version=version,
                body=dict(body),
                records=served,
                announced=len(matched),
                limit_exceeded=len(matched) > limit,
                fails=index < self.settings["fail_queries"],
            )
            self.queries[query.id] = query
            return self._document(query, "notStarted")

    def get(self, query_id: str) -> dict[str, Any]:
        with self.lock:
            query = self._query(query_id)
            status = query.status(self.settings)
            query.polls += 1
            return self._document(query, status)

    def records(self, query_id: str, skiptoken: str | None) -> tuple[list[dict[str, Any]], str | None]:
        with self.lock:
            query = self._query(query_id)
            if query.status(self.settings) != "succeeded":
                raise AuditSearchError(400, "BadRequest", "The query has not completed; its records are not available.")
            try:
                offset = int(skiptoken or 0)
            except ValueError:
                raise AuditSearchError(400, "BadRequest", "Invalid $skiptoken.") from None
            size = self.settings["page_size"]
            page = query.records[offset : offset + size]
            following = offset + size
            next_link = (
                f"{self.emu.graph_url}/{query.version}/security/auditLog/queries/{query.id}/records?$skiptoken={following}"
                if following < len(query.records)
                else None
            )
            return page, next_link

    def _query(self, query_id: str) -> AuditQuery:
        query = self.queries.get(query_id)
        if query is None:
            raise AuditSearchError(404, "NotFound", f"No audit log query with id '{query_id}'.")
        return query

    def _document(self, query: AuditQuery, status: str) -> dict[str, Any]:
        done = status in ("succeeded", "failed")
        return {
            "id": query.id,
            "displayName": query.body.get("displayName"),
            "filterStartDateTime": query.body.get("filterStartDateTime"),
            "filterEndDateTime": query.body.get("filterEndDateTime"),
            "recordTypeFilters": query.body.get("recordTypeFilters") or [],
            "keywordFilter": query.body.get("keywordFilter"),
            "operationFilters": query.body.get("operationFilters") or [],
            "userPrincipalNameFilters": query.body.get("userPrincipalNameFilters") or [],
            "ipAddressFilters": query.body.get("ipAddressFilters") or [],
            "objectIdFilters": [],
            "administrativeUnitIdFilters": [],
            "status": status,
            "approximateReturnedRecordCount": query.announced if done else None,
            "recordCountLimit": self.settings["record_count_limit"],
            "isRecordCountLimitExceeded": query.limit_exceeded if done else False,
        }
