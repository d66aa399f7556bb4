"""Audit records as they really arrive, parsed into one typed shape (handbook activity-feed.md §2).

`parse_record` never raises: a record it cannot use is `Unparsed` with the reason (the caller counts them as
`records_unparsed`). The traps it survives (§2.7): numbers as strings, `Parameters` as one string instead of a
`[{Name, Value}]` list, every `ClientIP` spelling, missing fields, `CreationTime` without a zone (UTC).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

EXCHANGE_ADMIN = 1
ENTRA_STS_LOGON = 15

# Operations whose actor is a mailbox owner or a delegate, and whose records carry the mailbox fields (§2.3).
_SUCCESS = frozenset({"true", "succeeded", "success", "partiallysucceeded"})
_SYSTEM_SIDS = frozenset({"s-1-5-18", "s-1-5-19", "s-1-5-20"})
_SERVICE_USER_TYPES = frozenset({3, 4})  # DcAdmin, System (§2.2)
_HOST = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$")
_IPV4_PORT = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3})(?::|-)(\d{1,5})$")
_HOST_PORT = re.compile(r"^([^:\[\]]+):(\d{1,5})$")
_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?")
_DIGITS = re.compile(r"\s*-?\d{1,18}\s*")
_EMPTY: Mapping[str, str] = MappingProxyType({})
MAX_TEXT = 4096  # a field longer than this is cut (a hostile or broken record must not blow up an alert)


@dataclass(frozen=True)
class ClientAddress:
    """A `ClientIP` as sent (`raw`), and what it names: an address (IPv4-mapped IPv6 unwrapped) or a host name."""

    raw: str = ""
    ip: IPAddress | None = None
    port: int | None = None
    host: str | None = None  # a host name (never resolved: no I/O, and it would be someone else's address)

    def __str__(self) -> str:
        return str(self.ip) if self.ip is not None else (self.host or self.raw)


@dataclass(frozen=True)
class AuditRecord:
    """One audit record: the common fields (§2.1), the Exchange mailbox fields (§2.3/2.4) and admin `Parameters`."""

    id: str
    creation_time: datetime  # aware, UTC
    record_type: int | None
    operation: str
    workload: str
    user_id: str
    user_type: int | None
    result_status: str
    client: ClientAddress
    object_id: str
    organization_id: str
    app_id: str = ""  # AppId, else ClientAppId, else AppAccessContext.ClientAppId
    external_access: bool | None = None
    # Exchange mailbox fields (RecordType 2, 3, 50)
    mailbox_owner_upn: str = ""
    mailbox_guid: str = ""
    logon_type: int | None = None
    client_info_string: str = ""
    parent_folder: str = ""  # Item.ParentFolder.Path (or Folder.Path)
    folders: tuple[str, ...] = ()  # Folders[].Path
    affected_items: int = 0  # len(AffectedItems)
    operation_count: int | None = None
    is_throttled: bool = False
    mail_access_type: str = ""
    member_upn: str = ""  # folder permission records: Item.ParentFolder.MemberUpn
    member_rights: str = ""
    send_as_user_smtp: str = ""
    send_on_behalf_of_user_smtp: str = ""
    # Exchange admin records (RecordType 1; 18 too): parameter name → value, values as text
    parameters: Mapping[str, str] = field(default=_EMPTY)
    modified_properties: tuple[tuple[str, str, str], ...] = ()  # (name, old, new)
    # coercions that did not work: the field is kept raw (None) and the record still used
    flags: tuple[str, ...] = ()
    _lower_parameters: Mapping[str, str] = field(default=_EMPTY, repr=False, compare=False)

    @property
    def client_ip(self) -> IPAddress | None:
        return self.client.ip

    @property
    def succeeded(self) -> bool:
        """ResultStatus True/Succeeded/Success/PartiallySucceeded (any case); a record without one counts as done:
        mailbox records often carry none."""
        return not self.result_status or self.result_status.lower() in _SUCCESS

    def parameter(self, name: str) -> str | None:
        """A parameter's value by name, case-insensitively (match by name, never by position)."""
        return self._lower_parameters.get(name.lower())

    def has_parameter(self, name: str) -> bool:
        return name.lower() in self._lower_parameters

    @functools.cached_property
    def actor(self) -> str:
        """UserId trimmed and lower-cased (computed once: every detection asks)."""
        return self.user_id.strip().lower()

    @property
    def is_service_actor(self) -> bool:
        """Microsoft's own accounts (§2.5): NT AUTHORITY\\SYSTEM (...), the system SIDs, UserType 3/4."""
        actor = self.actor
        return (
            self.user_type in _SERVICE_USER_TYPES
            or actor.startswith("nt authority\\")
            or actor in _SYSTEM_SIDS
            or "devilfish-applicationaccount" in actor
        )


@dataclass(frozen=True)
class Unparsed:
    """A record that could not be used, and why (counted as `records_unparsed`, never a crash)."""

    reason: str
    record_id: str | None = None


def parse_record(raw: Mapping[str, Any]) -> AuditRecord | Unparsed:
    """One record from a content blob; never raises."""
    try:
        return _parse(raw)
    except Exception as exc:
        record_id = raw.get("Id") if isinstance(raw, Mapping) else None
        return Unparsed(f"unexpected shape ({type(exc).__name__})", record_id if isinstance(record_id, str) else None)


def _parse(raw: Mapping[str, Any]) -> AuditRecord | Unparsed:
    if not isinstance(raw, Mapping):
        return Unparsed(f"not a JSON object ({type(raw).__name__})")
    record_id = raw.get("Id")
    if not isinstance(record_id, str) or not record_id.strip():
        return Unparsed("no Id")
    record_id = record_id.strip()[:200]
    created = parse_time(raw.get("CreationTime"))
    if created is None:
        return Unparsed("CreationTime is missing or not a date and time", record_id)
    flags: list[str] = []
    record_type = _int(raw, "RecordType", flags)
    parameters = parse_parameters(raw.get("Parameters"))
    if parameters is None:
        flags.append("Parameters")
        parameters = {}
    properties = _name_values(raw.get("OperationProperties"))
    item = _mapping(raw.get("Item"))
    parent = _mapping(item.get("ParentFolder"))
    folder = _mapping(raw.get("Folder"))
    throttled = _text(raw.get("IsThrottled")) or properties.get("isthrottled", "")
    affected = raw.get("AffectedItems")
    access_context = _mapping(raw.get("AppAccessContext"))
    client_text = next(
        (value for key in ("ClientIP", "ClientIPAddress", "ActorIpAddress") if (value := _text(raw.get(key)))), ""
    )
    return _record(
        id=record_id,
        creation_time=created,
        record_type=record_type,
        operation=_text(raw.get("Operation")),
        workload=_text(raw.get("Workload")),
        user_id=_text(raw.get("UserId")),
        user_type=_int(raw, "UserType", flags),
        result_status=_text(raw.get("ResultStatus")),
        client=parse_client_ip(client_text),
        object_id=_text(raw.get("ObjectId")),
        organization_id=_text(raw.get("OrganizationId")),
        app_id=_text(raw.get("AppId")) or _text(raw.get("ClientAppId")) or _text(access_context.get("ClientAppId")),
        external_access=_bool(raw.get("ExternalAccess")),
        mailbox_owner_upn=_text(raw.get("MailboxOwnerUPN")),
        mailbox_guid=_text(raw.get("MailboxGuid")),
        logon_type=_int(raw, "LogonType", flags),
        client_info_string=_text(raw.get("ClientInfoString")),
        parent_folder=_text(parent.get("Path")) or _text(folder.get("Path")),
        folders=tuple(_text(entry.get("Path")) for entry in _list(raw.get("Folders")) if isinstance(entry, Mapping)),
        affected_items=len(affected) if isinstance(affected, list) else 0,
        operation_count=_int(raw, "OperationCount", flags),
        is_throttled=_bool(throttled) is True,
        mail_access_type=_text(raw.get("MailAccessType")) or properties.get("mailaccesstype", ""),
        member_upn=_text(parent.get("MemberUpn")),
        member_rights=_text(parent.get("MemberRights")),
        send_as_user_smtp=_text(raw.get("SendAsUserSmtp")),
        send_on_behalf_of_user_smtp=_text(raw.get("SendOnBehalfOfUserSmtp")),
        parameters=MappingProxyType(parameters),
        modified_properties=_modified(raw.get("ModifiedProperties")),
        flags=tuple(flags),
        _lower_parameters=MappingProxyType({name.lower(): value for name, value in parameters.items()}),
    )


_DEFAULTS = {
    item.name: item.default for item in dataclasses.fields(AuditRecord) if item.default is not dataclasses.MISSING
}


def _record(**values: Any) -> AuditRecord:
    """`AuditRecord(**values)` without the frozen dataclass's per-field `object.__setattr__`, which costs about half
    of a record's parse at feed volumes (tests/activity compares the two); the record is as frozen afterwards."""
    record = object.__new__(AuditRecord)
    record.__dict__.update(_DEFAULTS)
    record.__dict__.update(values)
    return record


def parse_time(value: Any) -> datetime | None:
    """CreationTime as an aware UTC datetime: no zone means UTC (§2.7); a fraction of any length; Z or an offset."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if len(text) == 19 and text[10] == "T" and text[4] == text[7] == "-" and text[13] == text[16] == ":":
        # The feed's usual spelling (no fraction, no zone): one C call instead of the pattern below.
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
    if not 10 <= len(text) <= 40:
        return None
    match = _TIME.fullmatch(text)
    if not match:
        return None
    base, fraction, zone = match.groups()
    normalised = (
        base + (f".{fraction[:6].ljust(6, '0')}" if fraction else "") + ("+00:00" if zone in (None, "Z") else zone)
    )
    try:
        parsed = datetime.fromisoformat(normalised)
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def parse_client_ip(value: str) -> ClientAddress:
    """Every ClientIP spelling (§2.7): `1.2.3.4`, `1.2.3.4:port`, `1.2.3.4-port`, `[1.2.3.4]:port`,
    `::ffff:1.2.3.4`, `[::ffff:1.2.3.4]:port`, IPv6 bare or in brackets with or without a port, host names."""
    raw = value.strip()[:MAX_TEXT] if isinstance(value, str) else ""
    if not raw:
        return ClientAddress()
    text, port = raw, None
    if raw.startswith("["):
        inside, closed, rest = raw[1:].partition("]")
        if not closed:
            return _address(raw, raw[1:], None)
        text = inside
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        elif rest:
            return ClientAddress(raw=raw)
    elif (match := _IPV4_PORT.match(raw)) or ((match := _HOST_PORT.match(raw)) and not _is_ip(raw)):
        text, port = match.group(1), int(match.group(2))
    return _address(raw, text, port if port is not None and port <= 65535 else None)


@functools.lru_cache(maxsize=65536)  # a tenant's records repeat a few thousand addresses; ipaddress is slow
def _address(raw: str, text: str, port: int | None) -> ClientAddress:
    try:
        ip: IPAddress = ipaddress.ip_address(text.strip())
    except ValueError:
        host = text.strip().lower()
        return ClientAddress(raw=raw, port=port, host=host if _HOST.match(host) else None)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ClientAddress(raw=raw, ip=ip, port=port)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_parameters(value: Any) -> dict[str, str] | None:
    """`Parameters` as name → value text, whether a `[{Name, Value}]` list, one string or missing; None when it is
    something else (the record is flagged, its parameters taken as none)."""
    if value is None or value == "":
        return {}
    if isinstance(value, list):
        return _name_values(value, keep_case=True)
    if isinstance(value, str):
        return parse_parameter_string(value)
    return None


_TOKEN = re.compile(
    r"""\s*-(?P<name>[A-Za-z][A-Za-z0-9_]*)(?::|\s+|(?=$))"""  # -Name, -Name:value
)


def parse_parameter_string(text: str) -> dict[str, str]:
    """`-Name "value"`, `-List ("a","b")`, `-Empty ()`, a bare switch (`-Force`, taken as True); values stay text,
    lists joined with ","."""
    result: dict[str, str] = {}
    position, length = 0, len(text)
    while position < length:
        match = _TOKEN.match(text, position)
        if not match:
            position += 1  # stray text between parameters: skip it, keep what can be read
            continue
        name, position = match.group("name"), match.end()
        while position < length and text[position] in " \t":
            position += 1
        if position >= length or (text[position] == "-" and _TOKEN.match(text, position)):
            result[name] = "True"
            continue
        if text[position] == '"':
            end = text.find('"', position + 1)
            end = length if end < 0 else end
            result[name] = text[position + 1 : end]
            position = end + 1
        elif text[position] == "(":
            end = text.find(")", position + 1)
            end = length if end < 0 else end
            items = re.findall(r'"([^"]*)"|([^",\s][^",]*)', text[position + 1 : end])
            result[name] = ",".join((quoted or bare).strip() for quoted, bare in items)
            position = end + 1
        else:
            end = text.find(" ", position)
            end = length if end < 0 else end
            result[name] = text[position:end]
            position = end
    return result


def _name_values(value: Any, *, keep_case: bool = False) -> dict[str, str]:
    result: dict[str, str] = {}
    for entry in _list(value):
        if isinstance(entry, Mapping) and isinstance(entry.get("Name"), str):
            name = entry["Name"].strip()
            result[name if keep_case else name.lower()] = _value_text(entry.get("Value"))
    return result


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list):
        return ",".join(_value_text(item) for item in value)
    if value is None:
        return ""
    return str(value)[:MAX_TEXT]


def _modified(value: Any) -> tuple[tuple[str, str, str], ...]:
    return tuple(
        (_text(entry.get("Name")), _text(entry.get("OldValue")), _text(entry.get("NewValue")))
        for entry in _list(value)
        if isinstance(entry, Mapping)
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    if value is None or isinstance(value, dict):  # JSON gives dicts: skip the slower ABC check
        return value or _EMPTY
    return value if isinstance(value, Mapping) else _EMPTY


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def _text(value: Any) -> str:
    """Text fields trimmed (OriginatingServer and others end in \\r\\n); numbers and booleans as text."""
    if value is None:  # most fields of most records are absent: the cheapest test first
        return ""
    if isinstance(value, str):
        return value.strip()[:MAX_TEXT]
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return str(value)
    return ""


def _int(raw: Mapping[str, Any], name: str, flags: list[str]) -> int | None:
    """An int enum or count that may arrive as a digit string (§2.7); anything else is None and flagged."""
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        flags.append(name)
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    flags.append(name)
    return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower().lstrip("$")
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    return None


def truthy(value: str | None) -> bool | None:
    """A cmdlet parameter's boolean (`True`, `$true`, `1`...), or None when it is not one."""
    return _bool(value) if value is not None else None
