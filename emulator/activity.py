"""The Office 365 Management Activity API on the wire (listener "manage"): subscriptions, content listings with
`NextPageUri`, content blobs, the AF errors, the 24 h / 7 day window rules.

Fed by the scenario's `audit_records` (relative times such as `{{now-20m}}`, as the shared fixtures use) and by the
ExchangeAdmin records the emulated Exchange's own writes produce. Blobs are grouped, delayed, duplicated and
reordered as the scenario says (docs/emulator-spec.md "Management Activity API").
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .faults import RESPONSE_KINDS, respond
from .tokens import TokenError
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .emulator import Emulator

CONTENT_TYPES = ("Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General", "DLP.All")
# The API hosts of every cloud: a token for one of them carries the principal's Management API roles.
MANAGE_AUDIENCES = frozenset(
    f"https://{host}"
    for host in (
        "manage.office.com",
        "manage-gcc.office.com",
        "manage.office365.us",
        "manage.protection.apps.mil",
        "manage.office365.cn",
    )
)
MANAGE_AUDIENCE = "https://manage.office.com"  # the emulated (global) API accepts this audience only
ACTIVITY_ROLE = "ActivityFeed.Read"
DEFAULT_ACTIVITY_ROLES = (ACTIVITY_ROLE,)
PATH = re.compile(
    r"^/api/v1(?:\.0)?/(?P<tenant>[^/]+)/activity/feed/+(?:subscriptions/(?P<op>start|stop|list|content|notifications)"
    r"|audit/(?P<content_id>[^/]+))/?$",
    re.IGNORECASE,
)
MAX_WINDOW = timedelta(hours=24)
MAX_AGE = timedelta(days=7)
TEMPLATE = re.compile(r"\{\{([^{}]+)\}\}")
NOW_EXPRESSION = re.compile(r"^now((?:[+-]\d+[dhms])*)$")
OFFSET = re.compile(r"([+-])(\d+)([dhms])")
UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
RECORD_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # CreationTime: UTC without a zone designator (activity-feed.md §2.1)
API_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"  # contentCreated: milliseconds and Z
ACTIVITY_DEFAULTS: dict[str, Any] = {
    "subscriptions": {},  # content type -> "enabled" | "disabled"; absent: never started (AF20022)
    "page_size": 100,  # listing entries per page before a NextPageUri
    "admin_records": True,  # Exchange writes through the emulator append ExchangeAdmin records to Audit.Exchange
    "admin_record_delay_seconds": 0,  # how long after the write its blob becomes available
    "client_ip": "203.0.113.10",  # the ClientIP of those records (the emulator cannot see the caller's address)
    "expiration_days": 7,  # contentExpiration = contentCreated + this
}
ORIGINATING_SERVER = "DB8PR02MB5678 (15.20.7633.019)"
OBJECT_PREFIX = "EURPR02A001.prod.outlook.com/Microsoft Exchange Hosted Organizations"


# ---- scenario --------------------------------------------------------------------------------------------------


def activity_settings(raw: Any) -> dict[str, Any]:
    """The scenario's `activity_feed` block over ACTIVITY_DEFAULTS, validated."""
    given = dict(raw or {})
    unknown = sorted(k for k in given if k not in ACTIVITY_DEFAULTS)
    if unknown:
        expected = ", ".join(ACTIVITY_DEFAULTS)
        raise ValueError(f"unknown activity_feed keys: {', '.join(unknown)}; expected some of {expected}")
    settings = {**ACTIVITY_DEFAULTS, **given}
    subscriptions = dict(settings["subscriptions"] or {})
    for content_type, status in subscriptions.items():
        if content_type not in CONTENT_TYPES or status not in ("enabled", "disabled"):
            raise ValueError(f"activity_feed.subscriptions: {content_type!r}: {status!r} is not enabled/disabled")
    settings["subscriptions"] = subscriptions
    if not isinstance(settings["page_size"], int) or settings["page_size"] < 1:
        raise ValueError("activity_feed.page_size must be a positive whole number")
    return settings


def audit_records(raw: Any) -> list[dict[str, Any]]:
    """The scenario's `audit_records`: a list of record objects (kept unexpanded until the emulator starts)."""
    records = list(raw or [])
    if not all(isinstance(record, dict) for record in records):
        raise ValueError("audit_records must be a list of record objects")
    return [copy.deepcopy(record) for record in records]


def expand(value: Any, now: datetime, tenant_id: str) -> Any:
    """Fill the fixtures' templates: `{{now-5h+109s}}` (a UTC time without zone, as CreationTime is), `{{tenant}}`,
    `{{uuid}}` (a new GUID each time), `{{id:NAME}}` (the same GUID for the same name)."""
    if isinstance(value, dict):
        return {key: expand(item, now, tenant_id) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item, now, tenant_id) for item in value]
    if not isinstance(value, str) or "{{" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        token = match.group(1).strip()
        if token == "tenant":
            return tenant_id
        if token == "uuid":
            return str(uuid.uuid4())
        if token.startswith("id:"):
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/record/{token[3:]}"))
        if (moment := relative_time(token, now)) is not None:
            return moment.strftime(RECORD_TIME_FORMAT)
        raise ValueError(f"unknown template {{{{{token}}}}}")

    return TEMPLATE.sub(one, value)


def relative_time(token: str, now: datetime) -> datetime | None:
    """`now`, `now-20m`, `now-5h+109s`, … as a time; None when `token` is not such an expression."""
    match = NOW_EXPRESSION.match(token.replace(" ", ""))
    if not match:
        return None
    moment = now
    for sign, amount, unit in OFFSET.findall(match.group(1)):
        delta = timedelta(**{UNITS[unit]: int(amount)})
        moment = moment + delta if sign == "+" else moment - delta
    return moment


def parse_time(value: Any) -> datetime | None:
    """A record or API time (zone optional, UTC assumed), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def content_type_of(record: dict[str, Any]) -> str:
    """Where a record is published: `_content_type`, else by Workload (activity-feed.md §1.2)."""
    given = record.get("_content_type")
    if given is not None:
        if given not in CONTENT_TYPES:
            raise ValueError(f"audit record _content_type {given!r} is not one of {', '.join(CONTENT_TYPES)}")
        return str(given)
    workload = str(record.get("Workload") or "")
    if workload == "Exchange":
        return "Audit.Exchange"
    if workload == "AzureActiveDirectory":
        return "Audit.AzureActiveDirectory"
    if workload in ("SharePoint", "OneDrive"):
        return "Audit.SharePoint"
    return "Audit.General"


def api_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(API_TIME_FORMAT)[:-3] + "Z"


# ---- state -------------------------------------------------------------------------------------------------------


@dataclass
class Blob:
    """One content blob: its records, when it became available (`created`) and when it expires."""

    content_type: str
    content_id: str
    created: datetime
    expiration: datetime
    records: list[dict[str, Any]] = field(default_factory=list)


class ActivityFeed:
    """The emulated feed's state: subscriptions, blobs and the feed's clock. Guarded by its own lock."""

    def __init__(self, scenario: dict[str, Any], tenant_id: str, organization: str) -> None:
        self.settings = dict(scenario["activity_feed"])
        self.tenant_id = tenant_id
        self.organization = organization
        self.lock = threading.RLock()
        self.offset = timedelta(0)  # advance(): the feed's clock runs ahead of the wall clock by this much
        self.subscriptions: dict[str, str] = dict(self.settings["subscriptions"])
        self.starts: list[tuple[str, datetime]] = []  # (content type, when) of every successful start
        self.blobs: list[Blob] = []
        self.admin_records: list[dict[str, Any]] = []  # what Exchange writes appended, in order
        self._sequence = itertools.count(1)
        self._seed(scenario["audit_records"])

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta | float) -> None:
        """Move the feed's clock forward (blobs become available, content expires, windows move)."""
        with self.lock:
            self.offset += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)

    def _seed(self, records: list[dict[str, Any]]) -> None:
        """Group the scenario's records into blobs: `_blob` names one (a list: the record is in each, a duplicate),
        `_available` says when it becomes listable (default: its CreationTime); unnamed records share a blob per
        content type and minute of availability."""
        now = self.now()
        groups: dict[str, tuple[str, datetime, list[dict[str, Any]]]] = {}
        for raw in records:
            record = expand(raw, now, self.tenant_id)
            content_type = content_type_of(record)
            available = record.get("_available")
            moment = parse_time(available) if available is not None else parse_time(record.get("CreationTime")) or now
            if moment is None:
                raise ValueError(f"audit record _available {available!r} is not a time")
            names = record.get("_blob")
            if names is None:
                names = [f"auto:{content_type}:{moment:%Y%m%d%H%M}"]
            elif isinstance(names, str):
                names = [names]
            clean = {key: value for key, value in record.items() if not key.startswith("_")}
            for name in names:
                kind, created, members = groups.get(str(name), (content_type, moment, []))
                if kind != content_type:
                    raise ValueError(f"audit records of blob {name!r} belong to {kind} and {content_type}")
                members.append(copy.deepcopy(clean))
                groups[str(name)] = (kind, max(created, moment), members)
        for kind, created, members in sorted(groups.values(), key=lambda group: group[1]):
            self.add_blob(kind, members, created=created)

    def add_blob(self, content_type: str, records: list[dict[str, Any]], *, created: datetime | None = None) -> Blob:
        """Publish a blob (a test may add one while the emulator runs, e.g. a late one with old records)."""
        if content_type not in CONTENT_TYPES:
            raise ValueError(f"{content_type!r} is not a content type")
        with self.lock:
            created = created or self.now()
            sequence = next(self._sequence)
            stamp = f"{created:%Y%m%d%H%M%S%f}{sequence:03d}"
            slug = content_type.replace(".", "_")
            content_id = f"{stamp}${stamp}${slug.lower()}${slug}$emu{sequence:04d}"
            blob = Blob(
                content_type,
                content_id,
                created,
                created + timedelta(days=float(self.settings["expiration_days"])),
                [copy.deepcopy(record) for record in records],
            )
            self.blobs.append(blob)
            return blob

    def blob(self, content_id: str) -> Blob | None:
        with self.lock:
            return next((blob for blob in self.blobs if blob.content_id == content_id), None)

    def available(self, content_type: str, start: datetime, end: datetime) -> list[Blob]:
        """Blobs of `content_type` with start <= created < end that exist by now, oldest first."""
        now = self.now()
        with self.lock:
            blobs = [
                blob
                for blob in self.blobs
                if blob.content_type == content_type and start <= blob.created < end and blob.created <= now
            ]
        return sorted(blobs, key=lambda blob: (blob.created, blob.content_id))

    def record_admin_write(
        self, cmdlet: str, parameters: dict[str, Any], claims: dict[str, Any], object_id: str
    ) -> dict[str, Any] | None:
        """The ExchangeAdmin record (RecordType 1) of a write that succeeded, published to Audit.Exchange."""
        if not self.settings["admin_records"]:
            return None
        now = self.now()
        app_id = str(claims.get("appid") or claims.get("azp") or "")
        record = {
            "CreationTime": now.strftime(RECORD_TIME_FORMAT),
            "Id": str(uuid.uuid4()),
            "Operation": cmdlet,
            "OrganizationId": self.tenant_id,
            "RecordType": 1,
            "ResultStatus": "True",
            "UserKey": str(claims.get("oid") or app_id),
            "UserType": 5,  # [I] the type of an app-only write is open (activity-feed.md §5.2 item 5)
            "Version": 1,
            "Workload": "Exchange",
            "ClientIP": str(self.settings["client_ip"]),
            "ObjectId": object_id,
            "UserId": app_id,
            "AppId": app_id,
            "ClientAppId": app_id,
            "ExternalAccess": False,
            "OrganizationName": self.organization,
            "OriginatingServer": ORIGINATING_SERVER,
            "Parameters": [{"Name": str(name), "Value": parameter_text(value)} for name, value in parameters.items()],
        }
        with self.lock:
            self.admin_records.append(record)
        delay = timedelta(seconds=float(self.settings["admin_record_delay_seconds"]))
        self.add_blob("Audit.Exchange", [record], created=now + delay)
        return record


def admin_object_id(tenant: Any, cmdlet: str, parameters: dict[str, Any]) -> str:
    """The ObjectId of a write's record: the object the cmdlet changed, in Exchange's directory-path spelling."""
    organization = f"{OBJECT_PREFIX}/{tenant.organization}"
    identity = next((v for k, v in parameters.items() if str(k).lower() == "identity"), None)
    lowered = cmdlet.lower()
    if lowered == "set-adminauditlogconfig":
        return f"{organization}/Configuration/{tenant.admin_audit_log_config.get('Name', 'Admin Audit Log Settings')}"
    if lowered in ("set-organizationconfig", "enable-organizationcustomization") or identity in (None, ""):
        return organization
    find = tenant.bypass_association if lowered == "set-mailboxauditbypassassociation" else tenant.mailbox
    try:
        return f"{organization}/{find(str(identity)).get('Name')}"
    except Exception:  # an identity the write resolved another way: name it as given
        return f"{organization}/{identity}"


def parameter_text(value: Any) -> str:
    """How an ExchangeAdmin record spells a parameter value: booleans `True`/`False`, lists `a;b` [I], a
    GenericHashTable `@{Add=a;b; Remove=c}` [I], everything else as text."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return ";".join(parameter_text(item) for item in value)
    if isinstance(value, dict):
        return "@{" + "; ".join(f"{key}={parameter_text(item)}" for key, item in value.items()) + "}"
    return "" if value is None else str(value)


# ---- wire ------------------------------------------------------------------------------------------------------


def af_error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}})


def operation_of(path: str) -> str | None:
    """start, stop, list, content, notifications or blob (the `cmdlet` a manage fault names)."""
    match = PATH.match(path)
    if not match:
        return None
    return (match.group("op") or "blob").lower()


def _signature(start: datetime, end: datetime, content_type: str) -> str:
    return hashlib.sha256(f"{content_type}|{start.isoformat()}|{end.isoformat()}".encode()).hexdigest()[:12]


def _token(start: datetime, end: datetime, content_type: str, offset: int) -> str:
    """An opaque nextPage value bound to its listing (content type and window) and an offset into it."""
    text = f"{_signature(start, end, content_type)}:{offset}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _offset(token: str, start: datetime, end: datetime, content_type: str) -> int | None:
    """The offset a nextPage value names, or None when it is not one of this listing's."""
    try:
        signature, offset = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")
        position = int(offset)
    except (ValueError, UnicodeDecodeError):
        return None
    return position if signature == _signature(start, end, content_type) and position >= 0 else None


def parse_window_time(value: str) -> datetime | None:
    """`YYYY-MM-DD[THH:MM[:SS[.fff]]][Z]`, UTC (activity-feed.md §1.3)."""
    text = value.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?Z?$", text):
        return None
    return parse_time(text.removesuffix("Z"))


class ActivityApi:
    """Handles the "manage" listener for one Emulator."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    @property
    def feed(self) -> ActivityFeed:
        return self.emu.activity

    def base_url(self, req: Request) -> str:
        return f"https://{req.host}" if req.host else self.emu.manage_url

    def handle(self, req: Request) -> Response:
        match = PATH.match(req.path)
        if not match:
            return af_error(404, "AF20001", f"No route for {req.method} {req.path}")
        operation = (match.group("op") or "blob").lower()
        fault = self.emu.faults.fire(
            RESPONSE_KINDS - {"garbage_token", "expire_cursor"}, listener="manage", cmdlet=operation, path=req.path
        )

        def proceed() -> Response:
            return self._process(req, match.group("tenant"), operation, match.group("content_id"))

        if fault is None:
            return proceed()
        if fault.kind == "status" and str(fault.options.get("body", "envelope")) == "envelope":
            return self._status_fault(fault.options, operation, req)
        return respond(fault, "manage", proceed, self.emu.wait)

    def _status_fault(self, opts: dict[str, Any], operation: str, req: Request) -> Response:
        """A status fault in the API's own envelope: 429 and AF429 by default (also as a 403: `code: AF429`)."""
        status = int(opts.get("status", 429))
        default = "AF429" if status in (403, 429) else ("AF50000" if status >= 500 else "AF20001")
        code = str(opts.get("code", default))
        method = {"blob": "GetBlob", "content": "ListContent"}.get(operation, operation.capitalize())
        publisher = req.query.get("PublisherIdentifier", "00000000-0000-0000-0000-000000000000")
        messages = {
            "AF429": f"Too many requests. Method={method}, PublisherId={publisher}",
            "AF50000": "An internal server error occurred. Retry the request.",
        }
        response = af_error(status, code, str(opts.get("message") or messages.get(code, f"Emulated {code}")))
        response.headers.update({str(k): str(v) for k, v in (opts.get("headers") or {}).items()})
        return response

    # ---- the normal path -------------------------------------------------------------------------------------

    def _authenticate(self, req: Request, path_tenant: str) -> Response | None:
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return af_error(401, "Unauthorized", "The request has no bearer token.")
        try:
            claims = self.emu.issuer.verify(token.strip())
        except TokenError as exc:
            return af_error(401, "Unauthorized", str(exc))
        if claims.get("aud") != MANAGE_AUDIENCE:
            return af_error(401, "Unauthorized", f"The token audience '{claims.get('aud')}' is not valid.")
        token_tenant = str(claims.get("tid", "")).lower()
        if path_tenant.lower() != token_tenant or token_tenant != self.emu.tenant_id.lower():
            return af_error(
                403,
                "AF20010",
                f"The tenant ID passed in the URL ({path_tenant}) does not match the tenant ID passed in the access "
                f"token ({claims.get('tid')}).",
            )
        roles = [str(role) for role in claims.get("roles") or []]
        if ACTIVITY_ROLE not in roles:
            return af_error(
                403,
                "AF10001",
                f"The permission set ({', '.join(roles)}) sent in the request did not include the expected "
                f"permission {ACTIVITY_ROLE}.",
            )
        return None

    def _content_type(self, req: Request) -> tuple[str | None, Response | None]:
        value = req.query.get("contentType")
        if not value:
            return None, af_error(400, "AF20001", "Missing parameter: contentType.")
        if value not in CONTENT_TYPES:
            return None, af_error(400, "AF20020", "The specified content type is not valid.")
        return value, None

    def _process(self, req: Request, path_tenant: str, operation: str, content_id: str | None) -> Response:
        denied = self._authenticate(req, path_tenant)
        if denied is not None:
            return denied
        expected = "POST" if operation in ("start", "stop") else "GET"
        if req.method != expected:
            return af_error(405, "AF20001", f"Use {expected} for {operation}.")
        if operation == "list":
            with self.feed.lock:
                rows = [
                    {"contentType": kind, "status": status, "webhook": None}
                    for kind, status in self.feed.subscriptions.items()
                ]
            return json_response(200, rows)
        if operation == "blob":
            return self._blob(str(content_id))
        content_type, problem = self._content_type(req)
        if problem is not None or content_type is None:
            return problem or af_error(400, "AF20001", "Missing parameter: contentType.")
        if operation == "start":
            return self._start(content_type)
        if operation == "stop":
            with self.feed.lock:
                if self.feed.subscriptions.pop(content_type, None) is None:
                    return af_error(400, "AF20022", "No subscription found for the specified content type.")
            return Response(200, b"")
        if operation == "notifications":
            return json_response(200, [])
        return self._content(req, content_type)

    def _start(self, content_type: str) -> Response:
        with self.feed.lock:
            if self.feed.subscriptions.get(content_type) == "enabled":
                return af_error(400, "AF20024", "The subscription is already enabled. No property change.")
            self.feed.subscriptions[content_type] = "enabled"
            self.feed.starts.append((content_type, self.feed.now()))
        return json_response(200, {"contentType": content_type, "status": "enabled", "webhook": None})

    def _subscribed(self, content_type: str) -> Response | None:
        status = self.feed.subscriptions.get(content_type)
        if status == "enabled":
            return None
        if status == "disabled":
            return af_error(400, "AF20023", "The subscription was disabled by a tenant administrator.")
        return af_error(400, "AF20022", "No subscription found for the specified content type.")

    def _content(self, req: Request, content_type: str) -> Response:
        with self.feed.lock:
            refused = self._subscribed(content_type)
        if refused is not None:
            return refused
        now = self.feed.now()
        raw_start, raw_end = req.query.get("startTime"), req.query.get("endTime")
        both_or_neither = (
            "Start time and end time must both be specified (or both omitted) and must be less than or equal to "
            "24 hours apart."
        )
        if (raw_start is None) != (raw_end is None):
            return af_error(400, "AF20055", both_or_neither)
        if raw_start is None or raw_end is None:
            start, end = now - MAX_WINDOW, now
        else:
            parsed_start, parsed_end = parse_window_time(raw_start), parse_window_time(raw_end)
            if parsed_start is None or parsed_end is None:
                return af_error(400, "AF20002", "Invalid parameter type: startTime/endTime. Expected type: DateTime")
            start, end = parsed_start, parsed_end
        if start >= end or end - start > MAX_WINDOW:
            return af_error(400, "AF20055", both_or_neither)
        if start < now - MAX_AGE:
            return af_error(400, "AF20056", "Start time cannot be more than 7 days in the past.")
        blobs = self.feed.available(content_type, start, end)
        offset = 0
        if "nextPage" in req.query:
            found = _offset(req.query["nextPage"], start, end, content_type)
            if found is None or found > len(blobs):
                return af_error(400, "AF20031", f"Invalid nextPage Input: {req.query['nextPage']}.")
            offset = found
        size = int(self.feed.settings["page_size"])
        page = blobs[offset : offset + size]
        base = self.base_url(req)
        foreign_blob = self.emu.faults.fire({"foreign_content_uri"}, listener="manage", cmdlet="content", path=req.path)
        blob_base = self.emu.foreign_url if foreign_blob else base
        rows = [
            {
                "contentType": blob.content_type,
                "contentId": blob.content_id,
                "contentUri": f"{blob_base}/api/v1.0/{self.feed.tenant_id}/activity/feed/audit/{blob.content_id}",
                "contentCreated": api_time(blob.created),
                "contentExpiration": api_time(blob.expiration),
            }
            for blob in page
        ]
        headers: dict[str, str] = {}
        if offset + size < len(blobs):
            query = urlencode(
                {
                    "contentType": content_type,
                    "startTime": start.strftime(RECORD_TIME_FORMAT),
                    "endTime": end.strftime(RECORD_TIME_FORMAT),
                    "nextPage": _token(start, end, content_type, offset + size),
                }
            )
            # As Microsoft's own example: /api/v1/ (not v1.0) and no PublisherIdentifier.
            link = f"{base}/api/v1/{self.feed.tenant_id}/activity/feed/subscriptions/content?{query}"
            if self.emu.faults.fire({"foreign_next_link"}, listener="manage", cmdlet="content", path=req.path):
                link = self.emu.foreign_url + link[len(base) :]
            headers["NextPageUri"] = link
        return json_response(200, rows, headers)

    def _blob(self, content_id: str) -> Response:
        blob = self.feed.blob(content_id)
        now = self.feed.now()
        if blob is None or blob.created > now:
            return af_error(404, "AF20050", f"The specified content ({content_id}) doesn't exist.")
        if now >= blob.expiration:
            return af_error(
                400,
                "AF20051",
                f"Content requested with the key {content_id} has already expired. Content older than 7 days "
                "cannot be retrieved.",
            )
        with self.feed.lock:
            body = json.dumps(blob.records, separators=(",", ":")).encode()
        return Response(200, body, {"Content-Type": "application/json; charset=utf-8"})
