"""The watch pass (shared.activity.watch) over the in-process feed and the real state backends: the baselines the
detections learn survive between batches, passes and restarts, each alert is reported once even when a crash
re-delivers its records, an unusable record is counted, and the baseline's per-user documents round-trip."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.activity import shards
from shared.activity.baseline import Baseline, Login
from shared.activity.detections.base import Context
from shared.activity.ingest import RunBudget
from shared.activity.records import parse_record
from shared.activity.state import BASELINE_MAX_BYTES, StateError, StateStore, baseline_json
from shared.activity.watch import WatchReport, affected_controls, own_app_ids, watch_pass
from tests.activity.feedstub import T0, StubFeed, record
from tests.support.audit_records import admin

TENANT = "0b5c1c1e-1111-2222-3333-444455556666"
H = timedelta(hours=1)


def deletes(prefix: str, count: int, minute: int) -> list[dict[str, Any]]:
    return [
        record(
            f"{prefix}-{index}",
            T0 - 2 * H + timedelta(minutes=minute, seconds=index),
            Operation="SoftDelete",
            UserId="mallory@contoso.com",
            MailboxOwnerUPN="mallory@contoso.com",
            LogonType=0,
            ResultStatus="Succeeded",
        )
        for index in range(count)
    ]


def one_pass(feed: StubFeed, store: StateStore, report: WatchReport | None = None) -> WatchReport:
    report = report or WatchReport(tenant_id=TENANT)
    watch_pass(
        report,
        feed,
        store,
        Context(),
        content_types=("Audit.Exchange",),
        budget=RunBudget(seconds=60, requests=1000),
        first_lookback=timedelta(hours=24),
        now=feed.now,
    )
    return report


def test_a_baseline_learned_in_one_batch_is_read_by_the_next_and_after_a_restart(open_store: Callable[[], StateStore]):
    feed = StubFeed()
    feed.add("blob-1", T0 - 2 * H + timedelta(minutes=10), deletes("a", 60, 0))
    feed.add("blob-2", T0 - 2 * H + timedelta(minutes=20), deletes("b", 30, 5))
    first = one_pass(feed, open_store())
    assert first.records_processed == 90 and first.alerts == []  # 90 in the hour: below 100

    feed.add("blob-3", T0 - H, deletes("c", 15, 30))  # a new process on the same state: the hour's 90 are known
    feed.now = T0 + timedelta(minutes=10)
    second = one_pass(feed, open_store())
    [alert] = second.alerts
    assert alert.detection == "mass-delete" and "deleted 105 items" in alert.message


class CrashOnce:
    """A store whose first `mark_processed` fails: the records were judged, the blob was not marked."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def mark_processed(self, *args: Any) -> None:
        if not self.crashed:
            self.crashed = True
            raise StateError("the disk is full")
        self.inner.mark_processed(*args)


def test_an_alert_is_reported_once_even_when_a_crash_redelivers_its_records(store):
    feed = StubFeed()
    tamper = admin("Set-OrganizationConfig", {"AuditDisabled": "True"}, when=T0 - H, record_id="tamper-1")
    feed.add("blob-1", T0 - H, [tamper])
    report = WatchReport(tenant_id=TENANT)
    with pytest.raises(StateError):
        one_pass(feed, CrashOnce(store), report)  # type: ignore[arg-type]
    [alert] = report.alerts  # reported (and claimed) before the crash: the progress is in the report
    assert list(report.affected) == ["org-audit-enabled"]

    again = one_pass(feed, store)
    assert again.records_processed == 1 and again.alerts == []  # re-delivered, judged again, not reported again
    assert store.claim_alerts(TENANT, [alert.id], T0) == set()


def test_unusable_records_are_counted_and_the_rest_judged(store):
    feed = StubFeed()
    broken = {"Id": "no-time", "Operation": "MailboxLogin"}
    tamper = admin("Set-OrganizationConfig", {"AuditDisabled": "True"}, when=T0 - H)
    feed.add("blob-1", T0 - H, [broken, tamper])
    report = one_pass(feed, store)
    assert (report.records_processed, report.records_unparsed) == (2, 1)
    assert [alert.detection for alert in report.alerts] == ["audit-tampering"]
    assert report.status == "Alerts" and report.exit_code == 1


def test_a_blob_that_cannot_be_read_makes_an_error_pass_naming_it(store):
    feed = StubFeed()
    feed.add("bad-blob", T0 - H, [], fail_times=-1)
    report = one_pass(feed, store)
    assert report.status == "Error" and report.exit_code == 2
    assert "bad-blob" in (report.error or "") and report.failed_blobs == 1


# ---- the baseline's per-user documents ------------------------------------------------------------------------


def rich_baseline() -> Baseline:
    span = (T0 - 3 * H, T0 - H)
    return Baseline(
        history_start=T0 - timedelta(days=10),
        latest=T0,
        countries={"ann@contoso.com": {"NL": span}, "bob@contoso.com": {"DE": span}},
        send_as_pairs={"ann@contoso.com\nshared@contoso.com": span},
        access_pairs={"bob@contoso.com\nann@contoso.com": span},
        deletes={"ann@contoso.com": {"2026-11-20T10:00Z": 4}},
        logins={"ann@contoso.com": (Login(T0 - H, "r1", "81.2.69.142", "GB", 51.5, -0.1),)},
        grants={"bob@contoso.com": T0 - H},
        forwarding={"drop@evil.example": {"ann@contoso.com": T0 - H}},
    )


def test_the_baseline_splits_into_per_user_documents_and_merges_back():
    baseline = rich_baseline()
    keys = {
        shards.TENANT_KEY,
        shards.user_key("ann@contoso.com"),
        shards.user_key("bob@contoso.com"),
        shards.forward_key("drop@evil.example"),
    }
    parts = shards.split(baseline, keys)
    assert set(parts) == keys
    assert set(parts[shards.user_key("bob@contoso.com")].countries) == {"bob@contoso.com"}
    assert parts[shards.user_key("bob@contoso.com")].access_pairs == baseline.access_pairs
    assert shards.merge(parts.values()) == baseline
    assert shards.merge(Baseline.from_json(part.to_json()) for part in parts.values()) == baseline


def test_a_batch_loads_only_the_documents_its_records_name(store):
    records = [
        parse_record(admin("Set-Mailbox", {"Identity": "ann", "ForwardingSmtpAddress": "smtp:Drop@Evil.example"})),
        parse_record(record("r2", T0, UserId="Bob@Contoso.com")),
    ]
    keys = shards.keys_for(records)  # type: ignore[arg-type]
    assert keys == {
        shards.TENANT_KEY,
        shards.user_key("it-admin@contoso.com"),
        shards.user_key("bob@contoso.com"),
        shards.forward_key("drop@evil.example"),
    }
    loaded = shards.load(store, TENANT, keys)
    assert loaded.baseline == Baseline()
    assert shards.save(store, TENANT, loaded, rich_baseline()) == 3  # ann's part was not loaded: not written
    assert store.baseline(TENANT, shards.user_key("ann@contoso.com")) is None
    again = shards.load(store, TENANT, keys)
    assert again.baseline.countries == {"bob@contoso.com": rich_baseline().countries["bob@contoso.com"]}
    assert shards.save(store, TENANT, again, again.baseline) == 0  # nothing changed: nothing written


def test_a_document_that_outgrows_the_store_keeps_the_newest_sign_ins(store):
    many = tuple(
        Login(T0 - timedelta(minutes=index), f"record-{index:04d}" * 8, "81.2.69.142", "GB", 51.5, -0.1)
        for index in range(400, 0, -1)
    )
    baseline = Baseline(logins={"ann@contoso.com": many})
    key = shards.user_key("ann@contoso.com")
    loaded = shards.load(store, TENANT, {key})
    shards.save(store, TENANT, loaded, baseline)
    kept = Baseline.from_json(store.baseline(TENANT, key)).logins["ann@contoso.com"]
    assert 0 < len(kept) < len(many) and kept[-1] == many[-1]
    assert len(baseline_json(store.baseline(TENANT, key) or {}).encode()) <= BASELINE_MAX_BYTES


def test_the_pass_cache_reads_each_document_once_and_the_store_stays_the_truth(store):
    reads: list[str] = []
    real = store.baseline

    def counted(tenant: str, key: str) -> Any:
        reads.append(key)
        return real(tenant, key)

    store.baseline = counted
    cache = shards.ShardCache()
    keys = {shards.TENANT_KEY, shards.user_key("bob@contoso.com")}
    first = shards.load(store, TENANT, keys, cache)
    assert shards.save(store, TENANT, first, rich_baseline(), cache) == 2
    second = shards.load(store, TENANT, keys, cache)  # the next batch of the same pass
    assert sorted(reads) == sorted(keys)  # read once, by the first batch
    fresh = shards.load(store, TENANT, keys)  # another pass (no cache): the store holds what was learned
    assert second.baseline == fresh.baseline
    assert second.baseline.countries == {"bob@contoso.com": rich_baseline().countries["bob@contoso.com"]}


def test_the_pass_cache_is_bounded_by_what_it_remembers():
    cache = shards.ShardCache(max_units=3)
    for key in ("a", "b", "c"):
        cache.put(key, (None, None))  # an empty part costs one unit
    cache.get("a")
    cache.put("d", (None, None))
    assert [key for key in "abcd" if cache.get(key) is not None] == ["a", "c", "d"]
    heavy = Baseline(logins={"ann@contoso.com": tuple(Login(T0, f"r{i}", "81.2.69.142", "GB") for i in range(5))})
    cache.put("heavy", ({}, heavy))  # 5 sign-ins and its user: more than the budget, so only it stays
    assert [key for key in ("a", "c", "d", "heavy") if cache.get(key) is not None] == ["heavy"]
    assert cache.units == 7


def test_a_damaged_baseline_document_is_refused_not_half_read(store):
    key = shards.user_key("ann@contoso.com")
    store.put_baseline(TENANT, key, {"version": 99})
    with pytest.raises(StateError, match="damaged"):
        shards.load(store, TENANT, {key})


def test_a_very_long_actor_still_has_a_usable_key():
    key = shards.user_key("x" * 400 + "@contoso.com")
    assert key.startswith("user:#") and len(key) < 256


# ---- which control a tampering write weakened; our own identity -----------------------------------------------


@pytest.mark.parametrize(
    ("operation", "parameters", "controls"),
    [
        ("Set-OrganizationConfig", {"AuditDisabled": "True"}, {"org-audit-enabled"}),
        ("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": "False"}, {"audit-log-search"}),
        ("Set-MailboxAuditBypassAssociation", {"AuditBypassEnabled": "True"}, {"audit-bypass"}),
        ("Set-Mailbox", {"Identity": "ann", "AuditEnabled": "False"}, {"mailbox-audit-actions"}),
        ("Set-Mailbox", {"Identity": "ann", "AuditLogAgeLimit": "7.00:00:00"}, {"mailbox-audit-retention"}),
        ("Set-Mailbox", {"Identity": "ann", "AuditOwner": "MailboxLogin"}, {"mailbox-audit-actions"}),
        ("New-InboxRule", {"Name": "x"}, set()),
    ],
)
def test_a_tampering_write_names_the_control_it_weakened(operation, parameters, controls):
    parsed = parse_record(admin(operation, parameters))
    assert affected_controls(parsed) == controls  # type: ignore[arg-type]


def jwt(claims: dict[str, str]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{body}.signature"


def test_our_own_identity_is_the_client_id_and_the_tokens_app_and_object_ids():
    token = jwt({"appid": "AAAA-1111", "oid": "bbbb-2222", "aud": "https://outlook.office365.com"})
    assert own_app_ids(" Client-ID ", token) == {"client-id", "aaaa-1111", "bbbb-2222"}
    assert own_app_ids(None, "not a token") == frozenset()
