"""The feed client (shared/activity/feed.py) against the emulated Management Activity API: real tokens, real TLS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emulator import Fault
from shared.activity.errors import (
    FeedBudgetExceeded,
    FeedContentExpired,
    FeedError,
    FeedNoSubscription,
    FeedPermissionError,
    FeedProtocolError,
    FeedWindowError,
)
from shared.activity.feed import ContentRef, FeedClient, feed_client_for
from shared.config.loader import ConfigError, feed_settings, load
from shared.config.settings import Settings
from shared.exchange.client import RetryPolicy
from tests.integration.helpers import bearer_tokens, client_for
from tests.support.tenant import TENANT_ID, scenario

FAST = RetryPolicy(max_attempts=5, deadline_seconds=20, backoff_base_seconds=0.01, backoff_cap_seconds=0.05)
PUBLISHER = "11111111-2222-3333-4444-555555555555"
BOTH = {"Audit.Exchange": "enabled", "Audit.AzureActiveDirectory": "enabled"}


def feed_for(
    emu: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    auth_mode: str = "secret",
    extra: dict[str, str] | None = None,
    **kw: Any,
) -> FeedClient:
    """A FeedClient configured exactly as the watch would be from the emulator's environment."""
    env = {**emu.env(auth_mode), **(extra or {})}
    for name in ("REQUESTS_CA_BUNDLE", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        if name in env:
            monkeypatch.setenv(name, env[name])
    settings = Settings.from_env(env)
    kw.setdefault("policy", FAST)
    kw.setdefault("sleep", lambda seconds: None)
    return feed_client_for(settings, feed_settings(env, settings), **kw)


def record(minutes_ago: int, operation: str = "MailboxLogin", **fields: Any) -> dict[str, Any]:
    return {
        "CreationTime": f"{{{{now-{minutes_ago}m}}}}",
        "Id": f"{{{{id:{operation}-{minutes_ago}}}}}",
        "Operation": operation,
        "OrganizationId": "{{tenant}}",
        "RecordType": 2,
        "Workload": "Exchange",
        **fields,
    }


def last_hour(emu: Any) -> tuple[datetime, datetime]:
    now = emu.activity.now()
    return now - timedelta(hours=1), now + timedelta(minutes=1)


def no_token_in(text: str, emu: Any) -> bool:
    return not any(token in text for token in bearer_tokens(emu))


# ---- settings ------------------------------------------------------------------------------------------------------


def test_feed_settings_defaults_follow_the_cloud_and_tenant():
    env = {"EXO_TENANT_ID": TENANT_ID, "EXO_CLOUD": "gcchigh"}
    feed = feed_settings(env, Settings.from_env(env))
    assert feed.base_url == "https://manage.office365.us" and feed.scope == "https://manage.office365.us/.default"
    assert feed.publisher_id == TENANT_ID and feed.content_types == ("Audit.Exchange", "Audit.AzureActiveDirectory")
    gcc = {"EXO_TENANT_ID": TENANT_ID, "O365_MANAGEMENT_ENDPOINT": "https://manage-gcc.office.com"}
    assert feed_settings(gcc, Settings.from_env(gcc)).scope == "https://manage-gcc.office.com/.default"
    china = {"EXO_TENANT_ID": TENANT_ID, "EXO_CLOUD": "china"}
    assert feed_settings(china, Settings.from_env(china)).base_url == "https://manage.office365.cn"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("O365_MANAGEMENT_ENDPOINT", "http://manage.example.com"),
        ("O365_MANAGEMENT_ENDPOINT", "https://manage.office.com/api/v1.0"),
        ("O365_PUBLISHER_ID", "not-a-guid"),
        ("WATCH_CONTENT_TYPES", "Audit.Exchange,Audit.Everything"),
        ("WATCH_CONTENT_TYPES", " , "),
    ],
)
def test_bad_feed_settings_are_named(name, value):
    env = {"EXO_TENANT_ID": TENANT_ID, name: value}
    with pytest.raises(ConfigError) as caught:
        load(env)
    assert set(caught.value.problems) == {name}


def test_content_types_are_case_insensitive_and_loopback_http_is_allowed():
    env = {
        "EXO_TENANT_ID": TENANT_ID,
        "WATCH_CONTENT_TYPES": "audit.exchange, DLP.ALL, Audit.Exchange",
        "O365_MANAGEMENT_ENDPOINT": "http://127.0.0.1:8443",
        "O365_PUBLISHER_ID": PUBLISHER.upper(),
    }
    feed = load(env).feed
    assert feed.content_types == ("Audit.Exchange", "DLP.All") and feed.base_url == "http://127.0.0.1:8443"
    assert feed.scope == "https://manage.office.com/.default" and feed.publisher_id == PUBLISHER


# ---- subscriptions -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth_mode", ["secret", "certificate", "managed_identity"])
def test_each_auth_mode_starts_a_missing_subscription(start_emulator, monkeypatch, auth_mode):
    emu = start_emulator(scenario())
    feed = feed_for(emu, monkeypatch, auth_mode=auth_mode)
    now = datetime.now(UTC)
    assert feed.ensure_subscription("Audit.Exchange", None, now) == now
    assert emu.activity.subscriptions == {"Audit.Exchange": "enabled"}
    assert feed.ensure_subscription("Audit.Exchange", now, now + timedelta(minutes=1)) is None  # enabled: nothing
    assert [r.operation for r in emu.manage_requests] == ["list", "start"]
    token = emu.manage_requests[0].headers["authorization"].removeprefix("Bearer ")
    import jwt

    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "https://manage.office.com"


def test_the_15_minute_rule_holds_across_runs(start_emulator, monkeypatch):
    emu = start_emulator(scenario(activity_feed={"subscriptions": {"Audit.Exchange": "disabled"}}))
    first_run = datetime.now(UTC)
    started = feed_for(emu, monkeypatch).ensure_subscription("Audit.Exchange", None, first_run)
    assert started == first_run
    emu.activity.subscriptions["Audit.Exchange"] = "disabled"  # an admin disables it again

    with pytest.raises(FeedNoSubscription, match="less than 15 minutes ago"):
        feed_for(emu, monkeypatch).ensure_subscription("Audit.Exchange", started, first_run + timedelta(minutes=10))
    assert len(emu.activity.starts) == 1  # the second run sent no start

    later = first_run + timedelta(minutes=16)
    assert feed_for(emu, monkeypatch).ensure_subscription("Audit.Exchange", started, later) == later
    assert len(emu.activity.starts) == 2


def test_already_enabled_af20024_is_success(start_emulator, monkeypatch):
    emu = start_emulator(scenario(activity_feed={"subscriptions": BOTH}))
    feed_for(emu, monkeypatch).start_subscription("Audit.Exchange")
    assert [(r.operation, r.status) for r in emu.manage_requests] == [("start", 400)]


def test_a_listing_without_a_subscription_starts_it_and_retries(start_emulator, monkeypatch):
    emu = start_emulator(scenario(audit_records=[record(5)]))
    feed = feed_for(emu, monkeypatch)
    refs = list(feed.list_content("Audit.Exchange", *last_hour(emu)))
    assert len(refs) == 1 and set(feed.started) == {"Audit.Exchange"}
    assert [(r.operation, r.status) for r in emu.manage_requests] == [
        ("content", 400),
        ("start", 200),
        ("content", 200),
    ]


def test_a_listing_does_not_start_twice_within_15_minutes(start_emulator, monkeypatch):
    emu = start_emulator(scenario())
    feed = feed_for(emu, monkeypatch)
    five_minutes_ago = datetime.now(UTC) - timedelta(minutes=5)
    with pytest.raises(FeedNoSubscription):
        feed.ensure_subscription("Audit.Exchange", five_minutes_ago, datetime.now(UTC))
    with pytest.raises(FeedNoSubscription, match="less than 15 minutes ago"):
        list(feed.list_content("Audit.Exchange", *last_hour(emu)))  # AF20022, and the rule still holds
    assert emu.activity.starts == [] and feed.started == {}
    assert [r.operation for r in emu.manage_requests] == ["list", "content"]


# ---- windows -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (timedelta(hours=-25), timedelta(0)),  # more than 24 hours
        (timedelta(0), timedelta(hours=-1)),  # start after end
        (timedelta(days=-7, minutes=-1), timedelta(days=-6, hours=-1)),  # more than 7 days back
    ],
)
def test_a_bad_window_is_refused_before_anything_is_sent(start_emulator, monkeypatch, start, end):
    emu = start_emulator(scenario(activity_feed={"subscriptions": BOTH}))
    feed = feed_for(emu, monkeypatch)
    now = datetime.now(UTC)
    with pytest.raises(FeedWindowError):
        feed.list_content("Audit.Exchange", now + start, now + end)
    with pytest.raises(FeedWindowError, match="time zone"):
        feed.list_content("Audit.Exchange", datetime(2026, 1, 1), datetime(2026, 1, 1, 1))
    assert emu.manage_requests == [] and feed.requests_sent == 0


def test_a_full_24_hour_window_six_days_back_is_accepted(start_emulator, monkeypatch):
    emu = start_emulator(scenario(activity_feed={"subscriptions": BOTH}))
    end = datetime.now(UTC) - timedelta(days=5, hours=23)
    assert list(feed_for(emu, monkeypatch).list_content("Audit.Exchange", end - timedelta(hours=24), end)) == []


# ---- paging and origin lock -----------------------------------------------------------------------------------------


def test_next_page_uri_is_followed_with_the_publisher_identifier(start_emulator, monkeypatch):
    records = [record(minutes, _available=f"{{{{now-{minutes}m}}}}") for minutes in (50, 40, 30, 20, 10)]
    emu = start_emulator(scenario(audit_records=records, activity_feed={"subscriptions": BOTH, "page_size": 2}))
    feed = feed_for(emu, monkeypatch, extra={"O365_PUBLISHER_ID": PUBLISHER})
    refs = list(feed.list_content("Audit.Exchange", *last_hour(emu)))
    assert len(refs) == 5 and len({ref.content_id for ref in refs}) == 5
    assert all(isinstance(ref, ContentRef) and ref.created.tzinfo is not None for ref in refs)
    assert [ref.created for ref in refs] == sorted(ref.created for ref in refs)
    assert all(ref.expiration == ref.created + timedelta(days=7) for ref in refs)
    listings = [r for r in emu.manage_requests if r.operation == "content"]
    assert len(listings) == 3 and "nextPage" in listings[1].query
    assert listings[1].path.startswith("/api/v1/")  # the server's own link, followed as given
    for ref in refs:
        assert feed.fetch(ref)[0]["Operation"] == "MailboxLogin"
    assert {r.query.get("PublisherIdentifier") for r in emu.manage_requests} == {PUBLISHER}


def test_the_publisher_identifier_defaults_to_the_tenant(start_emulator, monkeypatch):
    emu = start_emulator(scenario(audit_records=[record(5)], activity_feed={"subscriptions": BOTH}))
    feed = feed_for(emu, monkeypatch)
    [ref] = feed.list_content("Audit.Exchange", *last_hour(emu))
    feed.fetch(ref)
    assert [r.query.get("PublisherIdentifier") for r in emu.manage_requests] == [TENANT_ID, TENANT_ID]


def test_a_foreign_next_page_uri_is_refused_before_the_token_goes_there(start_emulator, monkeypatch):
    records = [record(minutes, _available=f"{{{{now-{minutes}m}}}}") for minutes in (20, 10)]
    emu = start_emulator(scenario(audit_records=records, activity_feed={"subscriptions": BOTH, "page_size": 1}))
    emu.add_fault(Fault("foreign_next_link", listener="manage", cmdlet="content"))
    feed = feed_for(emu, monkeypatch)
    got: list[ContentRef] = []
    with pytest.raises(FeedProtocolError, match="refused a NextPageUri") as caught:
        got.extend(feed.list_content("Audit.Exchange", *last_hour(emu)))
    assert len(got) == 1  # the first page was good; the listing is reported incomplete
    assert emu.foreign_requests == [] and no_token_in(str(caught.value), emu)


def test_a_foreign_content_uri_is_refused_at_listing_and_at_fetch(start_emulator, monkeypatch):
    emu = start_emulator(scenario(audit_records=[record(5)], activity_feed={"subscriptions": BOTH}))
    emu.add_fault(Fault("foreign_content_uri", listener="manage", cmdlet="content"))
    feed = feed_for(emu, monkeypatch)
    with pytest.raises(FeedProtocolError, match="refused a contentUri"):
        list(feed.list_content("Audit.Exchange", *last_hour(emu)))
    forged = ContentRef(
        "Audit.Exchange", "x", f"{emu.foreign_url}/api/v1.0/{TENANT_ID}/activity/feed/audit/x", datetime.now(UTC), None
    )
    with pytest.raises(FeedProtocolError):
        feed.fetch(forged)
    assert emu.foreign_requests == []


# ---- throttling, errors, budget ----------------------------------------------------------------------------------


def test_throttling_is_retried_within_the_budget(start_emulator, monkeypatch):
    emu = start_emulator(scenario(audit_records=[record(5)], activity_feed={"subscriptions": BOTH}))
    emu.add_fault(
        Fault("status", listener="manage", cmdlet="content", status=429, times=2, headers={"Retry-After": "0"})
    )
    emu.add_fault(Fault("status", listener="manage", cmdlet="blob", status=403, code="AF429"))  # Microsoft's own
    emu.add_fault(Fault("status", listener="manage", cmdlet="blob", status=500))  # AF50000
    slept: list[float] = []
    feed = feed_for(emu, monkeypatch, sleep=slept.append)
    [ref] = feed.list_content("Audit.Exchange", *last_hour(emu))
    assert feed.fetch(ref)[0]["Operation"] == "MailboxLogin"
    assert [(r.operation, r.status) for r in emu.manage_requests] == [
        ("content", 429),
        ("content", 429),
        ("content", 200),
        ("blob", 403),
        ("blob", 500),
        ("blob", 200),
    ]
    assert slept[:2] == [0.0, 0.0] and feed.requests_sent == 6


def test_endless_throttling_stops_at_the_request_budget(start_emulator, monkeypatch):
    emu = start_emulator(scenario(activity_feed={"subscriptions": BOTH}))
    emu.add_fault(Fault("status", listener="manage", cmdlet="content", status=429, times=-1))
    feed = feed_for(emu, monkeypatch, request_budget=3)
    with pytest.raises(FeedBudgetExceeded, match="budget"):
        list(feed.list_content("Audit.Exchange", *last_hour(emu)))
    assert len(emu.manage_requests) == 3 and feed.requests_left == 0
    with pytest.raises(FeedBudgetExceeded, match="nothing more was sent"):
        feed.subscriptions()
    assert len(emu.manage_requests) == 3


def test_expired_content_is_typed_af20051(start_emulator, monkeypatch):
    emu = start_emulator(scenario(audit_records=[record(5)], activity_feed={"subscriptions": BOTH}))
    feed = feed_for(emu, monkeypatch)
    [ref] = feed.list_content("Audit.Exchange", *last_hour(emu))
    emu.activity.advance(timedelta(days=7, minutes=1))
    with pytest.raises(FeedContentExpired) as caught:
        feed.fetch(ref)
    assert caught.value.code == "AF20051" and "older than 7 days" in str(caught.value)
    assert no_token_in(str(caught.value), emu)
    assert len([r for r in emu.manage_requests if r.operation == "blob"]) == 1  # not retried


def test_a_token_without_activity_feed_read_names_the_permission(start_emulator, monkeypatch):
    emu = start_emulator(scenario(principal={"activity_roles": []}))
    with pytest.raises(FeedPermissionError) as caught:
        feed_for(emu, monkeypatch).ensure_subscription("Audit.Exchange", None, datetime.now(UTC))
    assert "ActivityFeed.Read" in str(caught.value) and caught.value.code == "AF10001"
    assert no_token_in(str(caught.value), emu) and len(emu.manage_requests) == 1


def test_an_unknown_content_type_is_refused_locally(start_emulator, monkeypatch):
    emu = start_emulator(scenario())
    with pytest.raises(FeedError, match="unknown content type"):
        feed_for(emu, monkeypatch).ensure_subscription("Audit.Everything", None, datetime.now(UTC))
    assert emu.manage_requests == []


# ---- what Exchange's own writes produce ----------------------------------------------------------------------------


def test_an_emulated_exchange_write_arrives_as_an_exchange_admin_record(start_emulator, monkeypatch):
    emu = start_emulator(
        scenario(
            mailboxes=[{"Name": "ann", "UserPrincipalName": "ann@contoso.com"}],
            activity_feed={"subscriptions": BOTH},
        )
    )
    exchange = client_for(emu, monkeypatch)
    exchange.invoke("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditEnabled": False})
    feed = feed_for(emu, monkeypatch)
    records = [r for ref in feed.list_content("Audit.Exchange", *last_hour(emu)) for r in feed.fetch(ref)]
    [written] = records
    assert written["Operation"] == "Set-Mailbox" and written["RecordType"] == 1
    assert {"Name": "AuditEnabled", "Value": "False"} in written["Parameters"]
    assert {"Name": "Identity", "Value": "ann@contoso.com"} in written["Parameters"]
    assert written["AppId"] == emu.client_id and written["ResultStatus"] == "True"
