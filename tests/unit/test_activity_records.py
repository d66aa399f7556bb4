"""Audit records as they really arrive (handbook activity-feed.md §2.7): the parser survives every fixture and trap,
never raises, and says why when it cannot use a record."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.activity.records import AuditRecord, Unparsed, parse_client_ip, parse_parameter_string, parse_record
from tests.support.audit_records import FIXTURES, admin, fixture_records, mailbox

pytestmark = pytest.mark.skipif(not FIXTURES.exists(), reason="../shared/fixtures is not beside the clone")


def test_every_fixture_record_parses():
    records = fixture_records()
    assert set(records) >= {
        "02-exchange-item.log",
        "ip-formats.log",
        "str-params.log",
        "beats-exchange-admin.json",
        "beats-exchange-admin-discovery-grant.json",
        "beats-exchange-item.json",
    }
    for name, raws in records.items():
        for raw in raws:
            parsed = parse_record(raw)
            assert isinstance(parsed, AuditRecord), (name, raw.get("Id"), parsed)
            assert parsed.creation_time.tzinfo is UTC


# The 15 spellings of Beats' ip-formats.log, and what each names: (address, port, host).
IP_FORMATS = {
    "[10.11.12.13]:12345": ("10.11.12.13", 12345, None),
    "10.11.12.13:12345": ("10.11.12.13", 12345, None),
    "10.11.12.13": ("10.11.12.13", None, None),
    "::ffff:10.11.12.13": ("10.11.12.13", None, None),
    "[::ffff:10.11.12.13]:12345": ("10.11.12.13", 12345, None),
    "[2001:db8::abcd]:12345": ("2001:db8::abcd", 12345, None),
    "2001:db8::abcd": ("2001:db8::abcd", None, None),
    "[2001:db8::abcd]": ("2001:db8::abcd", None, None),
    "[10.11.12.13]": ("10.11.12.13", None, None),
    "localhost": (None, None, "localhost"),
    "[localhost]:12345": (None, 12345, "localhost"),
    "localhost:12345": (None, 12345, "localhost"),
    "[cool.client.local]:12345": (None, 12345, "cool.client.local"),
    "cool.client.local": (None, None, "cool.client.local"),
    "cool.client.local:12345": (None, 12345, "cool.client.local"),
}


def test_every_client_ip_spelling_of_the_beats_fixture():
    raws = fixture_records()["ip-formats.log"]
    assert {raw["ClientIP"] for raw in raws} == set(IP_FORMATS)
    for raw in raws:
        parsed = parse_record(raw)
        assert isinstance(parsed, AuditRecord)
        address, port, host = IP_FORMATS[raw["ClientIP"]]
        assert parsed.client.raw == raw["ClientIP"]
        assert parsed.client_ip == (ipaddress.ip_address(address) if address else None)
        assert (parsed.client.port, parsed.client.host) == (port, host)


@pytest.mark.parametrize(
    ("text", "address", "port"),
    [
        ("1.2.3.4-8080", "1.2.3.4", 8080),  # Sentinel's hyphen before the port
        ("  81.2.69.142  ", "81.2.69.142", None),
        ("::1", "::1", None),
        ("[::1]:443", "::1", 443),
        ("fe80::1", "fe80::1", None),
    ],
)
def test_more_client_ip_spellings(text, address, port):
    client = parse_client_ip(text)
    assert (client.ip, client.port) == (ipaddress.ip_address(address), port)


@pytest.mark.parametrize("text", ["", "   ", "[", "[1.2.3.4", "[1.2.3.4]junk", "not an address!", "1.2.3.4:99999"])
def test_odd_client_ips_are_no_address_and_never_an_error(text):
    client = parse_client_ip(text)
    assert client.ip is None or str(client.ip) == "1.2.3.4"
    assert client.raw == text.strip()


def test_parameters_as_a_string_are_tokenised():
    [system_set_mailbox, _entra] = fixture_records()["str-params.log"]
    parsed = parse_record(system_set_mailbox)
    assert isinstance(parsed, AuditRecord)
    assert parsed.parameter("PageSize") == "100"  # numbers stay text
    assert parsed.parameter("pagesize") == "100"  # by name, case-insensitively
    assert parsed.parameter("MyItems") == "True"
    assert parsed.parameter("QuarantineTypes") == "Bulk,Spam,Phish"
    assert parsed.parameter("StartReceivedDate") == "4/25/2021 7:00:00 AM"
    assert parsed.is_service_actor


def test_the_three_string_forms_and_switches():
    text = '-Identity "ann@contoso.com" -EmailAddresses ("smtp:a@contoso.com","smtp:b@contoso.com") -Hold () -Force'
    assert parse_parameter_string(text) == {
        "Identity": "ann@contoso.com",
        "EmailAddresses": "smtp:a@contoso.com,smtp:b@contoso.com",
        "Hold": "",
        "Force": "True",
    }


def test_parameters_as_a_list_missing_or_odd():
    as_list = parse_record(admin("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditEnabled": "False"}))
    assert isinstance(as_list, AuditRecord) and as_list.parameter("auditenabled") == "False"
    missing = parse_record(admin("Set-Mailbox", None))
    assert isinstance(missing, AuditRecord) and dict(missing.parameters) == {} and not missing.flags
    odd = parse_record({**admin("Set-Mailbox", None), "Parameters": {"Identity": "x"}})
    assert isinstance(odd, AuditRecord) and dict(odd.parameters) == {} and "Parameters" in odd.flags
    typed = parse_record(
        {
            **admin("Set-Mailbox", None),
            "Parameters": [{"Name": "AuditEnabled", "Value": False}, {"Name": "N", "Value": 3}],
        }
    )
    assert isinstance(typed, AuditRecord) and (typed.parameter("AuditEnabled"), typed.parameter("N")) == ("False", "3")


def test_numbers_as_strings_are_coerced_and_other_text_flagged():
    raw = mailbox(
        "MailItemsAccessed",
        user="bob@contoso.com",
        owner="ann@contoso.com",
        logon_type="2",
        record_type="50",
        OperationCount="14",
        OperationProperties=[{"Name": "MailAccessType", "Value": "Bind"}, {"Name": "IsThrottled", "Value": "True"}],
    )
    parsed = parse_record(raw)
    assert isinstance(parsed, AuditRecord)
    assert (parsed.record_type, parsed.logon_type, parsed.operation_count) == (50, 2, 14)
    assert parsed.is_throttled and parsed.mail_access_type == "Bind"
    odd = parse_record({**raw, "LogonType": "Delegated", "RecordType": True})
    assert isinstance(odd, AuditRecord)
    assert (odd.logon_type, odd.record_type) == (None, None) and set(odd.flags) == {"LogonType", "RecordType"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-02-17T17:12:03", datetime(2020, 2, 17, 17, 12, 3, tzinfo=UTC)),  # no zone: UTC
        ("2020-02-17T17:12:03Z", datetime(2020, 2, 17, 17, 12, 3, tzinfo=UTC)),
        ("2020-02-17T17:12:03.1234567", datetime(2020, 2, 17, 17, 12, 3, 123456, tzinfo=UTC)),
        ("2020-02-17T19:12:03+02:00", datetime(2020, 2, 17, 17, 12, 3, tzinfo=UTC)),
        ("2020-02-17 17:12:03", datetime(2020, 2, 17, 17, 12, 3, tzinfo=UTC)),
    ],
)
def test_creation_time_is_aware_utc(text, expected):
    parsed = parse_record({"Id": "x", "CreationTime": text})
    assert isinstance(parsed, AuditRecord)
    assert parsed.creation_time == expected and parsed.creation_time.utcoffset() == timedelta(0)
    assert parsed.creation_time.tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([], "not a JSON object"),
        ({"CreationTime": "2020-02-17T17:12:03"}, "no Id"),
        ({"Id": "", "CreationTime": "2020-02-17T17:12:03"}, "no Id"),
        ({"Id": "a"}, "CreationTime"),
        ({"Id": "a", "CreationTime": "yesterday"}, "CreationTime"),
        ({"Id": "a", "CreationTime": "2020-02-30T17:12:03"}, "CreationTime"),
        ({"Id": "a", "CreationTime": 1581959523}, "CreationTime"),
    ],
)
def test_an_unusable_record_is_unparsed_with_the_reason(raw, reason):
    parsed = parse_record(raw)
    assert isinstance(parsed, Unparsed) and reason in parsed.reason


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "Id",
        "CreationTime",
        "RecordType",
        "UserType",
        "LogonType",
        "Parameters",
        "ClientIP",
        "ClientIPAddress",
        "Item",
        "Folders",
        "AffectedItems",
        "OperationProperties",
        "ModifiedProperties",
        "OperationCount",
        "IsThrottled",
        "ResultStatus",
        "AppAccessContext",
        "Operation",
        "UserId",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELDS, JSON, max_size=10), st.booleans())
def test_the_parser_never_raises(raw, with_id):
    if with_id:
        raw = {**raw, "Id": "r-1", "CreationTime": "2026-03-02T06:14:09"}
    parsed = parse_record(raw)
    assert isinstance(parsed, AuditRecord | Unparsed)
    json.dumps(parsed.reason if isinstance(parsed, Unparsed) else parsed.id)


def test_service_actors():
    def actor(user, user_type=0):
        parsed = parse_record(admin("Set-Mailbox", {}, user=user, user_type=user_type))
        assert isinstance(parsed, AuditRecord)
        return parsed.is_service_actor

    assert actor("NT AUTHORITY\\SYSTEM (Microsoft.Exchange.AdminApi.NetCore)")
    assert actor("S-1-5-18", 2)
    assert actor("someone@contoso.com", 3) and actor("someone@contoso.com", "4")
    assert not actor("it-admin@contoso.com", 2)


def test_the_fast_constructor_builds_the_same_frozen_record_as_the_dataclass():
    raw = {
        "Id": "r-1",
        "CreationTime": "2026-11-28T11:00:00",
        "RecordType": "2",
        "Operation": "HardDelete",
        "UserId": "Ann@Contoso.com ",
        "ClientIP": "[::ffff:81.2.69.142]:51044",
        "Parameters": '-Identity "ann" -AuditEnabled $false',
        "AffectedItems": [{}, {}],
    }
    parsed = parse_record(raw)
    assert isinstance(parsed, AuditRecord)
    values = {item.name: getattr(parsed, item.name) for item in dataclasses.fields(AuditRecord)}
    assert parsed == AuditRecord(**values)
    assert (parsed.mailbox_owner_upn, parsed.flags, parsed.affected_items) == ("", (), 2)  # defaults and values
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.operation = "Send"  # type: ignore[misc]
