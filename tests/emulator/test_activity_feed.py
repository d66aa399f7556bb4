"""The emulated Office 365 Management Activity API on the wire: what a feed client meets (activity-feed.md §1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from emulator import Fault
from emulator.activity import expand
from tests.emulator.support import Exo, secret_token
from tests.support.tenant import REPO, TENANT_ID, scenario

MANAGE_SCOPE = "https://manage.office.com/.default"
PUBLISHER = "11111111-2222-3333-4444-555555555555"
FIXTURES = REPO.parent / "shared" / "fixtures"
FORMAT = "%Y-%m-%dT%H:%M:%S"


def record(minutes_ago: int, operation: str = "MailboxLogin", **fields: Any) -> dict[str, Any]:
    return {
        "CreationTime": f"{{{{now-{minutes_ago}m}}}}",
        "Id": f"{{{{id:{operation}-{minutes_ago}}}}}",
        "Operation": operation,
        "OrganizationId": "{{tenant}}",
        "RecordType": 2,
        "Workload": "Exchange",
        "UserId": "ann@contoso.com",
        **fields,
    }


class Feed:
    """The Management Activity API over requests, with a real token for its audience."""

    def __init__(self, emu: Any, token: str | None = None) -> None:
        self.emu = emu
        self.token = token or secret_token(emu, MANAGE_SCOPE)
        self.root = f"{emu.manage_url}/api/v1.0/{emu.tenant_id}/activity/feed"

    def call(self, method: str, url: str, **params: str) -> requests.Response:
        params.setdefault("PublisherIdentifier", PUBLISHER)
        return requests.request(
            method,
            url,
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=self.emu.ca_bundle,
            timeout=10,
        )

    def start(self, content_type: str = "Audit.Exchange") -> requests.Response:
        return self.call("POST", f"{self.root}/subscriptions/start", contentType=content_type)

    def content(self, content_type: str = "Audit.Exchange", **window: str) -> requests.Response:
        return self.call("GET", f"{self.root}/subscriptions/content", contentType=content_type, **window)

    def window(self, hours_back: float = 1, ahead_minutes: float = 1) -> dict[str, str]:
        now = self.emu.activity.now()  # the feed's clock (a test may have advanced it)
        return {
            "startTime": (now - timedelta(hours=hours_back)).strftime(FORMAT),
            "endTime": (now + timedelta(minutes=ahead_minutes)).strftime(FORMAT),
        }


def code(response: requests.Response) -> str:
    return response.json()["error"]["code"]


def subscribed(**overrides: Any) -> dict[str, Any]:
    feed = {"subscriptions": {"Audit.Exchange": "enabled", "Audit.AzureActiveDirectory": "enabled"}}
    feed.update(overrides.pop("activity_feed", {}))
    return scenario(activity_feed=feed, **overrides)


# ---- tokens and access ---------------------------------------------------------------------------------------------


def test_a_token_for_the_management_api_carries_activity_feed_read(make_emulator):
    import jwt

    emu = make_emulator(scenario())
    claims = jwt.decode(secret_token(emu, MANAGE_SCOPE), options={"verify_signature": False})
    assert claims["aud"] == "https://manage.office.com" and claims["roles"] == ["ActivityFeed.Read"]
    assert claims["tid"] == TENANT_ID


def test_a_principal_without_the_role_gets_af10001(make_emulator):
    emu = make_emulator(scenario(principal={"activity_roles": []}))
    response = Feed(emu).call("GET", f"{Feed(emu).root}/subscriptions/list")
    assert response.status_code == 403 and code(response) == "AF10001"
    assert "ActivityFeed.Read" in response.json()["error"]["message"]


def test_an_exchange_token_is_refused_by_the_feed(make_emulator):
    emu = make_emulator(scenario())
    response = Feed(emu, secret_token(emu)).call("GET", f"{Feed(emu).root}/subscriptions/list")
    assert response.status_code == 401


def test_a_tenant_in_the_url_other_than_the_tokens_is_af20010(make_emulator):
    emu = make_emulator(scenario())
    feed = Feed(emu)
    other = f"{emu.manage_url}/api/v1.0/99999999-2222-3333-4444-555555555555/activity/feed/subscriptions/list"
    response = feed.call("GET", other)
    assert response.status_code == 403 and code(response) == "AF20010"


# ---- subscriptions -----------------------------------------------------------------------------------------------


def test_start_then_already_enabled_then_stop(make_emulator):
    emu = make_emulator(scenario())
    feed = Feed(emu)
    assert feed.call("GET", f"{feed.root}/subscriptions/list").json() == []
    assert code(feed.content(**feed.window())) == "AF20022"

    started = feed.start()
    assert started.status_code == 200
    assert started.json() == {"contentType": "Audit.Exchange", "status": "enabled", "webhook": None}
    again = feed.start()
    assert again.status_code == 400 and code(again) == "AF20024"
    assert "already enabled" in again.json()["error"]["message"]
    assert feed.call("GET", f"{feed.root}/subscriptions/list").json() == [
        {"contentType": "Audit.Exchange", "status": "enabled", "webhook": None}
    ]
    assert feed.content(**feed.window()).status_code == 200
    assert [kind for kind, _ in emu.activity.starts] == ["Audit.Exchange"]

    assert feed.call("POST", f"{feed.root}/subscriptions/stop", contentType="Audit.Exchange").status_code == 200
    assert code(feed.content(**feed.window())) == "AF20022"


def test_a_subscription_disabled_by_an_admin_is_af20023_until_started(make_emulator):
    emu = make_emulator(scenario(activity_feed={"subscriptions": {"Audit.Exchange": "disabled"}}))
    feed = Feed(emu)
    refused = feed.content(**feed.window())
    assert refused.status_code == 400 and code(refused) == "AF20023"
    assert feed.start().status_code == 200
    assert feed.content(**feed.window()).status_code == 200


def test_an_unknown_content_type_is_af20020(make_emulator):
    emu = make_emulator(scenario())
    assert code(Feed(emu).start("Audit.Everything")) == "AF20020"


# ---- window rules ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"hours_back": 25}, "AF20055"),  # more than 24 hours apart
        ({"hours_back": 24 * 7 + 1, "ahead_minutes": -(24 * 7 * 60)}, "AF20056"),  # 23 h wide, but 7 days back
    ],
)
def test_the_24_hour_and_7_day_rules(make_emulator, window, expected):
    emu = make_emulator(subscribed())
    feed = Feed(emu)
    response = feed.content(**feed.window(**window))
    assert response.status_code == 400 and code(response) == expected


def test_start_not_before_end_and_half_windows_are_refused(make_emulator):
    emu = make_emulator(subscribed())
    feed = Feed(emu)
    window = feed.window()
    backwards = feed.content(startTime=window["endTime"], endTime=window["startTime"])
    assert code(backwards) == "AF20055"
    assert code(feed.content(startTime=window["startTime"])) == "AF20055"
    assert code(feed.content(startTime="yesterday", endTime=window["endTime"])) == "AF20002"


def test_no_window_means_the_last_24_hours_and_windows_are_half_open(make_emulator):
    emu = make_emulator(subscribed())
    now = datetime.now(UTC).replace(microsecond=0)
    inside = emu.activity.add_blob("Audit.Exchange", [{"Id": "a"}], created=now - timedelta(hours=2))
    emu.activity.add_blob("Audit.Exchange", [{"Id": "b"}], created=now - timedelta(hours=30))
    feed = Feed(emu)
    assert [row["contentId"] for row in feed.content().json()] == [inside.content_id]

    start, end = now - timedelta(hours=2), now - timedelta(hours=1)
    at_start = feed.content(startTime=start.strftime(FORMAT), endTime=end.strftime(FORMAT)).json()
    assert [row["contentId"] for row in at_start] == [inside.content_id]  # startTime <= contentCreated
    before = (start - timedelta(hours=1)).strftime(FORMAT)
    assert feed.content(startTime=before, endTime=start.strftime(FORMAT)).json() == []  # contentCreated < endTime


# ---- listing, paging, blobs ----------------------------------------------------------------------------------------


def test_listing_pages_with_next_page_uri_like_microsofts_example(make_emulator):
    records = [record(minutes, _available=f"{{{{now-{minutes}m}}}}") for minutes in (50, 40, 30, 20, 10)]
    emu = make_emulator(subscribed(audit_records=records, activity_feed={"page_size": 2}))
    feed = Feed(emu)
    response = feed.content(**feed.window())
    ids, pages, links = [], 0, []
    while True:
        assert response.status_code == 200
        pages += 1
        ids += [row["contentId"] for row in response.json()]
        link = response.headers.get("NextPageUri")
        if not link:
            break
        links.append(link)
        response = requests.get(
            link,
            params={"PublisherIdentifier": PUBLISHER},
            headers={"Authorization": f"Bearer {feed.token}"},
            verify=emu.ca_bundle,
            timeout=10,
        )
    assert pages == 3 and len(ids) == len(set(ids)) == 5
    first = urlsplit(links[0])
    assert first.path == f"/api/v1/{TENANT_ID}/activity/feed/subscriptions/content"  # v1, as the docs' example
    query = parse_qs(first.query)
    assert "nextPage" in query and "PublisherIdentifier" not in query
    row = feed.content(**feed.window()).json()[0]
    assert set(row) == {"contentType", "contentId", "contentUri", "contentCreated", "contentExpiration"}
    assert row["contentCreated"].endswith("Z") and row["contentUri"].startswith(emu.manage_url)


def test_a_next_page_that_is_not_the_servers_is_af20031(make_emulator):
    emu = make_emulator(subscribed())
    feed = Feed(emu)
    response = feed.content(nextPage="2015101900R022885001761", **feed.window())
    assert response.status_code == 400 and code(response) == "AF20031"


def test_a_blob_holds_its_records_and_expires_after_7_days(make_emulator):
    emu = make_emulator(subscribed(audit_records=[record(5)]))
    feed = Feed(emu)
    [row] = feed.content(**feed.window()).json()
    blob = feed.call("GET", row["contentUri"])
    assert blob.status_code == 200
    [got] = blob.json()
    assert got["Operation"] == "MailboxLogin" and got["OrganizationId"] == TENANT_ID
    created = datetime.fromisoformat(row["contentCreated"])
    assert datetime.fromisoformat(row["contentExpiration"]) - created == timedelta(days=7)

    emu.activity.advance(timedelta(days=7, minutes=1))
    expired = feed.call("GET", row["contentUri"])
    assert expired.status_code == 400 and code(expired) == "AF20051"
    missing = feed.call("GET", row["contentUri"].replace("emu0001", "emu9999"))
    assert missing.status_code == 404 and code(missing) == "AF20050"


def test_the_fixtures_templates_expand_relative_to_now():
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    out = expand(
        {"a": "{{now-5h+109s}}", "b": "{{tenant}}", "c": ["{{id:x}}", "{{id:x}}"], "d": "{{now}}"}, now, TENANT_ID
    )
    assert out["a"] == "2026-03-02T07:01:49" and out["b"] == TENANT_ID and out["d"] == "2026-03-02T12:00:00"
    assert out["c"][0] == out["c"][1]
    assert expand("{{uuid}}", now, TENANT_ID) != expand("{{uuid}}", now, TENANT_ID)


def test_the_shared_fixture_records_are_published_as_audit_exchange(make_emulator):
    records = json.loads((FIXTURES / "watch" / "beats-exchange-admin.json").read_text(encoding="utf-8"))
    emu = make_emulator(subscribed(audit_records=records))
    feed = Feed(emu)
    rows = feed.content(**feed.window(hours_back=23)).json()
    published = [r for row in rows for r in feed.call("GET", row["contentUri"]).json()]
    assert len(published) == len(records)
    assert {r["OrganizationId"] for r in published} == {TENANT_ID}
    assert all("{{" not in r["CreationTime"] for r in published)
    assert {row["contentType"] for row in rows} == {"Audit.Exchange"}


def test_duplicates_and_late_out_of_order_blobs(make_emulator):
    duplicate = record(30, "HardDelete", _blob=["first", "second"])
    second_only = record(29, "SoftDelete", _blob="second", _available="{{now-2m}}")
    late = record(3 * 24 * 60, "SendAs", _available="{{now-10m}}")  # three days old, published ten minutes ago
    emu = make_emulator(subscribed(audit_records=[duplicate, second_only, late]))
    feed = Feed(emu)
    rows = feed.content(**feed.window()).json()
    blobs = {row["contentId"]: feed.call("GET", row["contentUri"]).json() for row in rows}
    ids = [r["Id"] for records in blobs.values() for r in records]
    hard_delete = next(r["Id"] for records in blobs.values() for r in records if r["Operation"] == "HardDelete")
    assert ids.count(hard_delete) == 2  # the same record in two blobs
    late_record = next(r for records in blobs.values() for r in records if r["Operation"] == "SendAs")
    age = datetime.now(UTC) - datetime.fromisoformat(late_record["CreationTime"]).replace(tzinfo=UTC)
    assert age > timedelta(days=2)  # older than the listing window it arrived in
    # Listed by availability, not by event time: the late blob (10 min ago) comes after the first (30 min ago).
    created = [row["contentCreated"] for row in rows]
    assert created == sorted(created) and len(rows) == 3


def test_a_blob_with_a_later_availability_appears_only_then(make_emulator):
    emu = make_emulator(subscribed(audit_records=[record(1, _available="{{now+30m}}")]))
    feed = Feed(emu)
    assert feed.content(**feed.window(ahead_minutes=60)).json() == []
    emu.activity.advance(timedelta(minutes=31))
    assert len(feed.content(**feed.window(ahead_minutes=60)).json()) == 1


# ---- throttling and other faults ---------------------------------------------------------------------------------


def test_throttling_as_a_429_and_as_microsofts_403_af429(make_emulator):
    emu = make_emulator(subscribed(audit_records=[record(5)]))
    feed = Feed(emu)
    [row] = feed.content(**feed.window()).json()
    emu.add_fault(Fault("status", listener="manage", cmdlet="blob", status=429, headers={"Retry-After": "1"}))
    emu.add_fault(Fault("status", listener="manage", cmdlet="blob", status=403, code="AF429"))
    first, second, third = (feed.call("GET", row["contentUri"]) for _ in range(3))
    assert first.status_code == 429 and code(first) == "AF429" and first.headers["Retry-After"] == "1"
    assert second.status_code == 403 and code(second) == "AF429"
    assert second.json()["error"]["message"] == f"Too many requests. Method=GetBlob, PublisherId={PUBLISHER}"
    assert third.status_code == 200


def test_an_internal_error_is_af50000(make_emulator):
    emu = make_emulator(subscribed())
    emu.add_fault(Fault("status", listener="manage", cmdlet="content", status=500))
    feed = Feed(emu)
    response = feed.content(**feed.window())
    assert response.status_code == 500 and code(response) == "AF50000"


def test_foreign_link_faults_point_at_the_foreign_listener(make_emulator):
    records = [record(minutes, _available=f"{{{{now-{minutes}m}}}}") for minutes in (20, 10)]
    emu = make_emulator(subscribed(audit_records=records, activity_feed={"page_size": 1}))
    emu.add_fault(Fault("foreign_next_link", listener="manage", cmdlet="content"))
    emu.add_fault(Fault("foreign_content_uri", listener="manage", cmdlet="content"))
    feed = Feed(emu)
    response = feed.content(**feed.window())
    assert response.headers["NextPageUri"].startswith(emu.foreign_url)
    assert response.json()[0]["contentUri"].startswith(emu.foreign_url)
    assert emu.foreign_requests == []


def test_every_call_is_recorded_with_its_operation(make_emulator):
    emu = make_emulator(scenario())
    feed = Feed(emu)
    feed.start()
    feed.content(**feed.window())
    assert [(r.operation, r.query.get("PublisherIdentifier")) for r in emu.manage_requests] == [
        ("start", PUBLISHER),
        ("content", PUBLISHER),
    ]


# ---- the Exchange writes' own records ------------------------------------------------------------------------------


def _admin_records(emu: Any) -> list[dict[str, Any]]:
    feed = Feed(emu)
    rows = feed.content(**feed.window()).json()
    return [r for row in rows for r in feed.call("GET", row["contentUri"]).json() if r.get("RecordType") == 1]


def test_an_exchange_write_through_the_emulator_appends_an_exchange_admin_record(make_emulator):
    emu = make_emulator(subscribed(mailboxes=[{"Name": "ann", "UserPrincipalName": "ann@contoso.com"}]))
    exo = Exo(emu)
    exo.ok("Get-OrganizationConfig")  # a read: no record
    exo.ok("Set-OrganizationConfig", {"AuditDisabled": True})
    exo.ok("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditEnabled": False, "AuditOwner": ["MailboxLogin"]})
    assert exo.post("Set-Mailbox", {"Identity": "nobody@contoso.com", "AuditEnabled": True}).status_code == 404

    org, mailbox = _admin_records(emu)
    assert org["Operation"] == "Set-OrganizationConfig" and org["Parameters"] == [
        {"Name": "AuditDisabled", "Value": "True"}
    ]
    assert mailbox["Operation"] == "Set-Mailbox" and mailbox["ObjectId"].endswith("/contoso.onmicrosoft.com/ann")
    assert {"Name": "AuditEnabled", "Value": "False"} in mailbox["Parameters"]
    for rec in (org, mailbox):
        assert rec["RecordType"] == 1 and rec["ResultStatus"] == "True" and rec["Workload"] == "Exchange"
        assert rec["AppId"] == rec["UserId"] == emu.client_id and rec["OrganizationId"] == TENANT_ID
        assert rec["ClientIP"] and rec["Id"] and datetime.fromisoformat(rec["CreationTime"]).tzinfo is None
    assert emu.activity.admin_records == [org, mailbox]


def test_admin_records_can_be_delayed_or_switched_off(make_emulator):
    delayed = make_emulator(subscribed(activity_feed={"admin_record_delay_seconds": 3600}))
    Exo(delayed).ok("Set-OrganizationConfig", {"AuditDisabled": True})
    assert _admin_records(delayed) == []
    delayed.activity.advance(timedelta(minutes=61))
    assert len(_admin_records(delayed)) == 1

    off = make_emulator(subscribed(activity_feed={"admin_records": False}))
    Exo(off).ok("Set-OrganizationConfig", {"AuditDisabled": True})
    assert _admin_records(off) == [] and off.activity.admin_records == []


def test_bad_scenario_blocks_are_refused():
    from emulator import load_scenario

    with pytest.raises(ValueError, match="activity_feed"):
        load_scenario({"activity_feed": {"pagesize": 3}})
    with pytest.raises(ValueError, match="audit_records"):
        load_scenario({"audit_records": ["not a record"]})
