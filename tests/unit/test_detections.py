"""The detections (docs/detections.md): each fires on its positive cases and not on its near misses, exactly once per
record set, with stable ids; the handbook's fixtures (service noise) raise nothing; suppression by a written
exception works until it expires; the product's own writes are recorded, not alerted, unless they weaken auditing."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from typing import Any

import pytest

from shared.activity.baseline import Baseline
from shared.activity.detections.base import Context
from shared.activity.detections.evaluate import Evaluation, evaluate_batch
from shared.activity.detections.registry import DETECTION_IDS
from shared.activity.geo import Location, RegistryCountries, StaticLocations
from shared.activity.records import AuditRecord, parse_record
from shared.config.exception_register import SUPPORTED_DETECTIONS, parse_register
from shared.config.loader import WatchPolicy
from tests.support.audit_records import FIXTURES, NOW, admin, fixture_records, mailbox, sign_in

OWN_APP = "6a5b4c3d-0000-4000-8000-00000000a11d"
ACCEPTED = frozenset({"contoso.com", "contoso.onmicrosoft.com"})
# A tenant whose history already covers the learning period (a month back).
LEARNED = Baseline(history_start=NOW - timedelta(days=30), latest=NOW - timedelta(days=1))
GEO = StaticLocations(
    {
        "81.2.69.142": Location("GB", 51.5, -0.13),  # London
        "81.2.69.160": Location("GB", 53.48, -2.24),  # Manchester, 260 km away
        "79.159.11.115": Location("ES", 40.42, -3.70),  # Madrid
        "133.1.1.1": Location("JP", 35.68, 139.69),  # Tokyo
        "77.88.8.8": Location("RU"),  # country only
        "5.255.255.5": Location("NL"),  # country only
    },
    data_date="2026-10-27",
)


def context(**changes: Any) -> Context:
    return Context(
        **{
            "policy": WatchPolicy(),
            "accepted_domains": ACCEPTED,
            "own_app_ids": frozenset({OWN_APP}),
            "geo": GEO,
            **changes,
        }
    )


def parsed(*raws: dict[str, Any]) -> list[AuditRecord]:
    records = [parse_record(raw) for raw in raws]
    assert all(isinstance(record, AuditRecord) for record in records), records
    return records  # type: ignore[return-value]


def run(*raws: dict[str, Any], baseline: Baseline = LEARNED, **changes: Any) -> Evaluation:
    return evaluate_batch(parsed(*raws), baseline, context(**changes))


def fired(evaluation: Evaluation, detection: str | None = None) -> list[Any]:
    return [alert for alert in evaluation.alerts if detection is None or alert.detection == detection]


# ---- the registry and the fixtures --------------------------------------------------------------------------------


def test_the_registry_lists_every_detection_the_register_accepts():
    assert DETECTION_IDS == SUPPORTED_DETECTIONS
    assert len(DETECTION_IDS) == 10


@pytest.mark.skipif(not FIXTURES.exists(), reason="../shared/fixtures is not beside the clone")
@pytest.mark.parametrize("baseline", [Baseline(), LEARNED], ids=["empty", "learned"])
def test_the_fixtures_are_service_noise_and_raise_no_alert(baseline):
    raws = [raw for records in fixture_records().values() for raw in records]
    evaluation = run(*raws, baseline=baseline, geo=RegistryCountries())
    assert evaluation.alerts == () and evaluation.suppressed == () and evaluation.recorded == ()
    # Microsoft's actors are kept out of the baselines too.
    assert not evaluation.baseline.grants and not evaluation.baseline.access_pairs and not evaluation.baseline.deletes


# ---- audit-tampering ----------------------------------------------------------------------------------------------

TAMPERING = [
    ("Set-OrganizationConfig", {"AuditDisabled": "True"}),
    ("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": "False"}),
    ("Set-AdminAuditLogConfig", {"AdminAuditLogEnabled": "$false"}),
    ("Set-MailboxAuditBypassAssociation", {"Identity": "svc-backup", "AuditBypassEnabled": "True"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditEnabled": "False"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditLogAgeLimit": "00:00:00"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditLogAgeLimit": "30.00:00:00"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditOwner": "@{Remove=MailItemsAccessed}"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditDelegate": "SendAs"}),
]
NOT_TAMPERING = [
    ("Set-OrganizationConfig", {"AuditDisabled": "False"}),
    ("Set-AdminAuditLogConfig", {"UnifiedAuditLogIngestionEnabled": "True"}),
    ("Set-MailboxAuditBypassAssociation", {"Identity": "svc-backup", "AuditBypassEnabled": "False"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditEnabled": "True"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditLogAgeLimit": "180.00:00:00"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "AuditOwner": "@{Add=MailItemsAccessed}"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "ForwardingSmtpAddress": ""}),
    ("Get-OrganizationConfig", {"AuditDisabled": "True"}),  # a read, whatever it carries
]


@pytest.mark.parametrize(("operation", "parameters"), TAMPERING)
def test_audit_tampering_fires(operation, parameters):
    evaluation = run(admin(operation, parameters))
    [alert] = fired(evaluation)
    assert (alert.detection, alert.severity, alert.operation) == ("audit-tampering", "high", operation)
    assert alert.actor == "it-admin@contoso.com" and alert.client_ip == "81.2.69.142"
    assert "Re-check" in alert.message


@pytest.mark.parametrize(("operation", "parameters"), NOT_TAMPERING)
def test_audit_tampering_near_misses(operation, parameters):
    assert fired(run(admin(operation, parameters))) == []


def test_a_failed_cmdlet_is_no_tampering():
    assert fired(run(admin("Set-OrganizationConfig", {"AuditDisabled": "True"}, result="False"))) == []


def test_tampering_by_a_microsoft_actor_is_still_judged_by_its_values():
    record = admin(
        "Set-AdminAuditLogConfig",
        '-UnifiedAuditLogIngestionEnabled "False"',
        user="NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)",
        user_type=3,
    )
    assert [alert.detection for alert in fired(run(record))] == ["audit-tampering"]


def test_a_lowered_retention_is_read_from_modified_properties():
    lowered = admin(
        "Set-Mailbox",
        {"Identity": "ann@contoso.com", "AuditLogAgeLimit": "180.00:00:00"},
        ModifiedProperties=[{"Name": "AuditLogAgeLimit", "OldValue": "365.00:00:00", "NewValue": "180.00:00:00"}],
    )
    [alert] = fired(run(lowered))
    assert "lowered from 365.00:00:00" in alert.message
    widened = admin(
        "Set-Mailbox",
        {"Identity": "ann@contoso.com", "AuditOwner": "MailboxLogin,HardDelete,SendAs"},
        ModifiedProperties=[{"Name": "AuditOwner", "OldValue": "MailboxLogin,HardDelete", "NewValue": "x"}],
    )
    assert fired(run(widened)) == []


def test_the_products_own_audit_write_is_recorded_but_a_revert_is_alerted():
    fix = admin("Set-OrganizationConfig", {"AuditDisabled": "False"}, AppId=OWN_APP)
    revert = admin("Set-OrganizationConfig", {"AuditDisabled": "True"}, AppId=OWN_APP)
    evaluation = run(fix, revert)
    [alert] = fired(evaluation)
    assert alert.by_product and "Written by this product" in alert.message
    assert alert.record_ids == (revert["Id"],)


# ---- mailbox-permission -------------------------------------------------------------------------------------------

GRANTS = [
    (
        "Add-MailboxPermission",
        {"Identity": "ceo@contoso.com", "User": "mallory@contoso.com", "AccessRights": "FullAccess"},
    ),
    (
        "Add-RecipientPermission",
        {"Identity": "ceo@contoso.com", "Trustee": "mallory@contoso.com", "AccessRights": "SendAs"},
    ),
    ("Set-Mailbox", {"Identity": "ceo@contoso.com", "GrantSendOnBehalfTo": "mallory@contoso.com"}),
    (
        "Add-MailboxFolderPermission",
        {"Identity": "ceo@contoso.com:\\Inbox", "User": "mallory", "AccessRights": "Reviewer"},
    ),
    ("Add-MailboxFolderPermission", {"Identity": "ceo@contoso.com:\\", "User": "mallory", "AccessRights": "Owner"}),
]
NOT_GRANTS = [
    ("Add-MailboxPermission", {"Identity": "ceo@contoso.com", "User": "mallory", "AccessRights": "ReadPermission"}),
    ("Set-Mailbox", {"Identity": "ceo@contoso.com", "GrantSendOnBehalfTo": "$null"}),
    (
        "Add-MailboxFolderPermission",
        {"Identity": "ceo@contoso.com:\\Projects", "User": "bob", "AccessRights": "Reviewer"},
    ),
    (
        "Add-MailboxFolderPermission",
        {"Identity": "ceo@contoso.com:\\Calendar", "User": "Default", "AccessRights": "AvailabilityOnly"},
    ),
    ("Remove-MailboxPermission", {"Identity": "ceo@contoso.com", "User": "mallory", "AccessRights": "FullAccess"}),
]


@pytest.mark.parametrize(("operation", "parameters"), GRANTS)
def test_mailbox_permission_fires_high_for_an_actor_who_made_no_grant_lately(operation, parameters):
    [alert] = fired(run(admin(operation, parameters)))
    assert (alert.detection, alert.severity) == ("mailbox-permission", "high")
    assert alert.mailbox and alert.mailbox.startswith("ceo@contoso.com")


@pytest.mark.parametrize(("operation", "parameters"), NOT_GRANTS)
def test_mailbox_permission_near_misses(operation, parameters):
    assert fired(run(admin(operation, parameters))) == []


def test_a_second_grant_by_the_same_actor_is_medium_and_the_grant_is_learned():
    first, second = GRANTS[0], GRANTS[1]
    evaluation = run(admin(*first), admin(*second, when=NOW + timedelta(hours=1)))
    assert [alert.severity for alert in fired(evaluation)] == ["high", "medium"]
    assert evaluation.baseline.grants["it-admin@contoso.com"] == NOW + timedelta(hours=1)
    later = run(admin(*first, when=NOW + timedelta(days=2)), baseline=evaluation.baseline)
    assert [alert.severity for alert in fired(later)] == ["medium"]


def test_a_folder_grant_in_the_mailbox_itself_fires():
    record = mailbox(
        "AddFolderPermissions",
        user="ann@contoso.com",
        owner="ann@contoso.com",
        logon_type=0,
        Item={
            "ParentFolder": {"Path": "\\Inbox", "MemberUpn": "mallory@contoso.com", "MemberRights": "ReadAny, Visible"}
        },
    )
    [alert] = fired(run(record))
    assert alert.detection == "mailbox-permission" and alert.target == "mallory@contoso.com"


# ---- mail-forwarding ----------------------------------------------------------------------------------------------

FORWARDS = [
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "ForwardingSmtpAddress": "smtp:ann.archive@example.net"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "ForwardingAddress": "drop@example.net"}),
    ("New-InboxRule", {"Mailbox": "ann@contoso.com", "Name": "r", "ForwardTo": '"Drop" [SMTP:drop@example.net]'}),
    ("Set-InboxRule", {"Identity": "ann@contoso.com\\r", "RedirectTo": "bob@contoso.com;drop@example.net"}),
    ("New-InboxRule", {"Mailbox": "ann@contoso.com", "Name": "r", "ForwardAsAttachmentTo": "drop@example.net"}),
]
NOT_FORWARDS = [
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "ForwardingSmtpAddress": ""}),  # clearing it
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "ForwardingSmtpAddress": "$null"}),
    ("Set-Mailbox", {"Identity": "ann@contoso.com", "ForwardingSmtpAddress": "smtp:bob@contoso.com"}),  # internal
    ("New-InboxRule", {"Mailbox": "ann@contoso.com", "Name": "r", "ForwardTo": "bob@CONTOSO.onmicrosoft.com"}),
    ("New-InboxRule", {"Mailbox": "ann@contoso.com", "Name": "r", "MoveToFolder": "ann@contoso.com:\\Archive"}),
]


@pytest.mark.parametrize(("operation", "parameters"), FORWARDS)
def test_mail_forwarding_to_an_outside_domain_fires(operation, parameters):
    [alert] = fired(run(admin(operation, parameters)))
    assert (alert.detection, alert.severity, alert.mailbox) == ("mail-forwarding", "medium", "ann@contoso.com")
    assert alert.target and alert.target.endswith("@example.net")


@pytest.mark.parametrize(("operation", "parameters"), NOT_FORWARDS)
def test_mail_forwarding_near_misses(operation, parameters):
    assert fired(run(admin(operation, parameters))) == []


def test_several_mailboxes_forwarding_to_one_destination_raise_the_severity():
    first = admin("Set-Mailbox", {"Identity": "ann@contoso.com", "ForwardingSmtpAddress": "smtp:drop@example.net"})
    evaluation = run(first)
    assert [alert.severity for alert in fired(evaluation)] == ["medium"]
    second = admin(
        "Set-Mailbox",
        {"Identity": "bob@contoso.com", "ForwardingSmtpAddress": "drop@example.net"},
        when=NOW + timedelta(days=3),
    )
    [alert] = fired(run(second, baseline=evaluation.baseline))
    assert alert.severity == "high" and "ann@contoso.com" in alert.message
    nine_days_on = {**second, "Id": "other", "CreationTime": "2026-12-07T12:00:00"}  # ann forwarded 9 days before
    assert [a.severity for a in fired(run(nine_days_on, baseline=evaluation.baseline))] == ["medium"]


def test_a_transport_rule_redirect_is_high():
    [alert] = fired(run(admin("New-TransportRule", {"Name": "all", "BlindCopyTo": "drop@example.net"})))
    assert (alert.detection, alert.severity, alert.mailbox) == ("mail-forwarding", "high", None)


# ---- inbox-rule-evasion -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parameters",
    [
        {"DeleteMessage": "True", "SubjectOrBodyContainsWords": "phishing;hacked"},
        {"MoveToFolder": "ann@contoso.com:\\RSS Feeds", "SubjectContainsWords": "invoice"},
        {"MoveToFolder": "Conversation History", "BodyContainsWords": "Do not click"},
        {"MoveToFolder": ":\\Deleted Items", "SubjectContainsWords": "password reset"},
    ],
)
def test_inbox_rule_evasion_fires(parameters):
    record = admin("New-InboxRule", {"Mailbox": "ann@contoso.com", "Name": "x", **parameters})
    [alert] = fired(run(record), "inbox-rule-evasion")
    assert (alert.severity, alert.mailbox, alert.target) == ("high", "ann@contoso.com", "x")


@pytest.mark.parametrize(
    "parameters",
    [
        {"DeleteMessage": "True", "FromAddressContainsWords": ""},  # a hiding rule without the words
        {"MoveToFolder": "ann@contoso.com:\\Invoices", "SubjectContainsWords": "invoice"},  # filing
        {"DeleteMessage": "False", "SubjectContainsWords": "phishing"},
        {"MarkAsRead": "True", "SubjectContainsWords": "newsletter"},
    ],
)
def test_inbox_rule_evasion_near_misses(parameters):
    record = admin("New-InboxRule", {"Mailbox": "ann@contoso.com", "Name": "x", **parameters})
    assert fired(run(record), "inbox-rule-evasion") == []


# ---- send-as and non-owner-access: new (actor, mailbox) pairs ------------------------------------------------------


def send_as(user="mallory@contoso.com", owner="ceo@contoso.com", when=NOW, **extra):
    return mailbox("SendAs", user=user, owner=owner, logon_type=2, when=when, SendAsUserSmtp=owner, **extra)


def test_send_as_fires_for_a_new_pair_once_and_then_knows_it():
    evaluation = run(send_as(), send_as(when=NOW + timedelta(minutes=5)))
    [alert] = fired(evaluation)
    assert (alert.detection, alert.actor, alert.mailbox) == ("send-as", "mallory@contoso.com", "ceo@contoso.com")
    assert fired(run(send_as(when=NOW + timedelta(days=1)), baseline=evaluation.baseline)) == []
    # Outside the baseline window the pair is new again.
    assert len(fired(run(send_as(when=NOW + timedelta(days=20)), baseline=evaluation.baseline))) == 1


def test_send_as_near_misses():
    own = mailbox(
        "SendAs", user="ceo@contoso.com", owner="ceo@contoso.com", logon_type=0, SendAsUserSmtp="ceo@contoso.com"
    )
    failed = {**send_as(), "ResultStatus": "Failed"}
    system = send_as(user="S-1-5-18")
    assert fired(run(own, failed, system)) == []


def test_pair_detections_wait_for_the_learning_period_in_event_time():
    young = Baseline(history_start=NOW - timedelta(days=2))
    assert fired(run(send_as(), baseline=young)) == []
    # A backfill that reaches 7 days back counts: the same batch brings the history and the new pair.
    old = send_as(user="assistant@contoso.com", when=NOW - timedelta(days=8))
    evaluation = run(old, send_as(), baseline=Baseline())
    assert [alert.actor for alert in fired(evaluation)] == ["mallory@contoso.com"]


def access(user="mallory@contoso.com", owner="ceo@contoso.com", logon_type=2, when=NOW, **extra):
    return mailbox(
        "MailItemsAccessed", user=user, owner=owner, logon_type=logon_type, when=when, record_type=50, **extra
    )


def test_non_owner_access_fires_for_a_new_pair_and_names_powershell():
    powershell = access(client="Client=Microsoft.Exchange.Powershell; Microsoft WinRM Client", logon_type=1)
    [alert] = fired(run(powershell))
    assert (alert.detection, alert.severity) == ("non-owner-access", "high")
    assert "PowerShell" in alert.message
    [delegate] = fired(run(access(owner="cfo@contoso.com")))
    assert delegate.severity == "medium"


def test_non_owner_access_near_misses():
    owner = access(user="ceo@contoso.com", logon_type=0)
    system = access(user="S-1-5-18", logon_type=1)
    known = Baseline(
        history_start=LEARNED.history_start,
        access_pairs={"mallory@contoso.com\nceo@contoso.com": (NOW - timedelta(days=3), NOW - timedelta(days=1))},
    )
    assert fired(run(owner, system)) == []
    assert fired(run(access(), baseline=known)) == []


# ---- mass-delete --------------------------------------------------------------------------------------------------


def delete(items=10, when=NOW, user="ann@contoso.com", owner="ann@contoso.com", operation="SoftDelete", logon=0):
    return mailbox(
        operation,
        user=user,
        owner=owner,
        logon_type=logon,
        when=when,
        record_type=3,
        client="Client=ActiveSync",
        AffectedItems=[{"Id": f"i{n}", "ParentFolder": {"Path": "\\Inbox"}} for n in range(items)],
    )


def test_mass_delete_fires_once_when_the_hour_crosses_the_threshold_across_batches():
    first = run(*(delete(when=NOW + timedelta(minutes=n)) for n in range(6)))  # 60 items
    assert fired(first) == []
    second = run(*(delete(when=NOW + timedelta(minutes=10 + n)) for n in range(5)), baseline=first.baseline)  # 110
    [alert] = fired(second)
    assert (alert.detection, alert.severity) == ("mass-delete", "high") and "110 items" in alert.message
    third = run(delete(when=NOW + timedelta(minutes=30)), baseline=second.baseline)  # 120: already alerted
    assert fired(third) == []
    # The next hour starts again from nothing.
    assert fired(run(delete(when=NOW + timedelta(hours=1, minutes=1)), baseline=third.baseline)) == []


def test_mass_delete_near_miss_and_late_records_land_in_their_own_hour():
    evaluation = run(*(delete(items=33, when=NOW + timedelta(minutes=n)) for n in range(3)))  # 99 in one hour
    assert fired(evaluation) == []
    late = run(delete(items=50, when=NOW - timedelta(hours=3)), baseline=evaluation.baseline)
    assert fired(late) == []


def test_mass_delete_well_above_the_actors_own_baseline():
    history = Baseline(
        history_start=LEARNED.history_start,
        latest=NOW,
        deletes={"ann@contoso.com": {"2026-11-20T09:00Z": 4, "2026-11-21T10:00Z": 6, "2026-11-22T11:00Z": 5}},
    )
    [alert] = fired(run(delete(items=60), baseline=history))
    assert alert.severity == "medium" and "busiest hour" in alert.message
    assert fired(run(delete(items=29), baseline=history)) == []


def test_any_non_owner_hard_delete_fires():
    [alert] = fired(
        run(delete(items=1, user="mallory@contoso.com", owner="ceo@contoso.com", operation="HardDelete", logon=2))
    )
    assert (alert.detection, alert.severity, alert.mailbox) == ("mass-delete", "medium", "ceo@contoso.com")
    assert fired(run(delete(items=1, operation="HardDelete"))) == []  # the owner's own


# ---- mailbox-export -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "severity"),
    [
        (
            admin("New-MailboxExportRequest", {"Mailbox": "ceo@contoso.com", "FilePath": "\\\\srv\\pst\\ceo.pst"}),
            "high",
        ),
        (admin("New-ComplianceSearchAction", '-SearchName "all" -Export -Format "FxStream"', record_type=18), "high"),
        (
            admin("New-ComplianceSearchAction", {"SearchName": "all", "Purge": "True", "PurgeType": "HardDelete"}),
            "high",
        ),
        (access(OperationProperties=[{"Name": "IsThrottled", "Value": "True"}]), "high"),
        (access(OperationCount="250", OperationProperties=[{"Name": "MailAccessType", "Value": "Bind"}]), "medium"),
    ],
)
def test_mailbox_export_fires(raw, severity):
    alerts = fired(run(raw, baseline=Baseline()), "mailbox-export")
    assert [alert.severity for alert in alerts] == [severity]


def test_mailbox_export_near_misses():
    sync = access(OperationCount="500", OperationProperties=[{"Name": "MailAccessType", "Value": "Sync"}])
    few = access(OperationCount="14")
    search = admin("New-ComplianceSearch", {"Name": "all", "ExchangeLocation": "All"})
    assert fired(run(sync, few, search, baseline=Baseline()), "mailbox-export") == []


# ---- unusual-location and impossible-travel -----------------------------------------------------------------------


def history(user="ann@contoso.com", ip="81.2.69.142", days=10):
    return [sign_in(user, NOW - timedelta(days=day, hours=3), ip) for day in range(days, 0, -1)]


def test_unusual_location_fires_on_a_new_country_after_the_learning_period():
    raws = [*history(), sign_in("ann@contoso.com", NOW, "79.159.11.115")]
    evaluation = run(*raws, baseline=Baseline())  # a backfill: the history and the sign-in in one batch
    [alert] = fired(evaluation, "unusual-location")
    assert (alert.country, alert.geo_data_date, alert.client_ip) == ("ES", "2026-10-27", "79.159.11.115")
    assert "usual: GB" in alert.message
    assert (
        fired(run(sign_in("ann@contoso.com", NOW + timedelta(days=1), "79.159.11.115"), baseline=evaluation.baseline))
        == []
    )


def test_unusual_location_near_misses():
    assert fired(run(*history(days=3), sign_in("ann@contoso.com", NOW, "79.159.11.115"), baseline=Baseline())) == []
    raws = [
        *history(),
        sign_in("ann@contoso.com", NOW, "81.2.69.160"),  # same country
        sign_in("ann@contoso.com", NOW, "10.1.2.3"),  # private
        sign_in("ann@contoso.com", NOW, "52.97.1.1"),  # Microsoft's
        sign_in("ann@contoso.com", NOW, "79.159.11.115", result="Failed"),
    ]
    assert fired(run(*raws, baseline=Baseline()), "unusual-location") == []


def test_impossible_travel_with_coordinates_in_either_arrival_order():
    london = sign_in("ann@contoso.com", NOW, "81.2.69.142")
    tokyo = sign_in("ann@contoso.com", NOW + timedelta(hours=2), "133.1.1.1")
    manchester = sign_in("ann@contoso.com", NOW + timedelta(minutes=10), "81.2.69.160")
    together = fired(run(london, tokyo, manchester), "impossible-travel")
    assert [(alert.severity, alert.record_ids) for alert in together] == [
        ("high", tuple(sorted((manchester["Id"], tokyo["Id"]))))
    ]
    # Tokyo first, London and Manchester later: the same alert, the same id.
    first = run(tokyo)
    later = run(london, manchester, baseline=first.baseline)
    assert [alert.id for alert in fired(later, "impossible-travel")] == [together[0].id]


def test_impossible_travel_near_misses():
    london = sign_in("ann@contoso.com", NOW, "81.2.69.142")
    manchester = sign_in("ann@contoso.com", NOW + timedelta(minutes=5), "81.2.69.160")  # 260 km: under 500
    madrid = sign_in("ann@contoso.com", NOW + timedelta(hours=3), "79.159.11.115")  # 1,260 km in 3 h: 420 km/h
    assert fired(run(london, manchester, madrid), "impossible-travel") == []


def test_impossible_travel_falls_back_to_two_countries_in_15_minutes_without_coordinates():
    moscow = sign_in("ann@contoso.com", NOW, "77.88.8.8")
    amsterdam = sign_in("ann@contoso.com", NOW + timedelta(minutes=9), "5.255.255.5")
    [alert] = fired(run(moscow, amsterdam), "impossible-travel")
    assert alert.severity == "medium" and "WATCH_GEOIP_DB" in alert.message
    later = sign_in("ann@contoso.com", NOW + timedelta(minutes=40), "5.255.255.5", record_id="later")
    assert fired(run(moscow, later), "impossible-travel") == []


def test_location_detections_wait_for_the_learning_period():
    young = Baseline(history_start=NOW - timedelta(days=1))
    london = sign_in("ann@contoso.com", NOW, "81.2.69.142")
    tokyo = sign_in("ann@contoso.com", NOW + timedelta(hours=1), "133.1.1.1")
    assert fired(run(london, tokyo, baseline=young)) == []


# ---- once, stable, suppressed, recorded ---------------------------------------------------------------------------


def a_bit_of_everything() -> list[dict[str, Any]]:
    return [
        admin(*TAMPERING[0]),
        admin(*GRANTS[0]),
        admin(*FORWARDS[0]),
        admin(
            "New-InboxRule",
            {"Mailbox": "ann@contoso.com", "Name": "x", "DeleteMessage": "True", "SubjectContainsWords": "hacked"},
        ),
        send_as(),
        access(),
        *(delete(when=NOW + timedelta(minutes=n), items=20) for n in range(6)),
        admin("New-MailboxExportRequest", {"Mailbox": "ceo@contoso.com"}),
        *history(),
        sign_in("ann@contoso.com", NOW, "79.159.11.115"),
        sign_in("ann@contoso.com", NOW + timedelta(minutes=30), "133.1.1.1"),
    ]


def test_every_detection_fires_exactly_once_with_stable_ids_in_any_order_and_on_replay():
    raws = a_bit_of_everything()
    evaluation = run(*raws, baseline=Baseline())
    detections = sorted(alert.detection for alert in evaluation.alerts)
    assert set(detections) == set(DETECTION_IDS)
    assert len(detections) == len(set((a.detection, a.record_ids) for a in evaluation.alerts))
    shuffled = raws[:]
    random.Random(7).shuffle(shuffled)
    again = run(*shuffled, *raws[:5], baseline=Baseline())  # another order, with duplicates
    assert sorted(a.id for a in again.alerts) == sorted(a.id for a in evaluation.alerts)
    for alert in evaluation.alerts:
        assert alert.record_ids and alert.message and alert.severity in ("high", "medium", "low")
        assert alert.time.tzinfo is not None
        json.dumps(alert.as_json())


TODAY = NOW.date()


def exceptions(*entries: dict[str, str], today: date = TODAY):
    base = {"reason": "known delegate", "approved_by": "CISO, change 4711", "expires": "2027-06-30"}
    return parse_register([{**base, **entry} for entry in entries], today)


def test_a_written_exception_suppresses_only_what_it_names():
    register = exceptions({"detection": "send-as", "actor": "Mallory@contoso.com", "mailbox": "ceo@contoso.com"})
    assert not register.rejected
    evaluation = run(send_as(), send_as(owner="cfo@contoso.com"), exceptions=register)
    assert [alert.mailbox for alert in fired(evaluation)] == ["cfo@contoso.com"]
    [(alert, entry)] = evaluation.suppressed
    assert alert.mailbox == "ceo@contoso.com" and entry.approved_by == "CISO, change 4711"
    target = exceptions({"detection": "mail-forwarding", "target": "drop@example.net"})
    forward = admin("Set-Mailbox", {"Identity": "ann@contoso.com", "ForwardingSmtpAddress": "drop@example.net"})
    assert fired(run(forward, exceptions=target)) == [] and len(run(forward, exceptions=target).suppressed) == 1


def test_an_expired_exception_does_not_suppress():
    register = exceptions({"detection": "send-as", "actor": "mallory@contoso.com", "expires": "2026-11-01"})
    assert not register.detections and "expired" in register.rejected[0]["problem"]
    assert len(fired(run(send_as(), exceptions=register))) == 1
    # Valid when the file was read, but it had expired by the event's day: no cover either.
    stale = exceptions(
        {"detection": "send-as", "actor": "mallory@contoso.com", "expires": "2026-11-27"}, today=date(2026, 11, 1)
    )
    assert stale.detections and len(fired(run(send_as(), exceptions=stale))) == 1


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"detection": "send-as"}, "names none of"),
        ({"detection": "send-as", "actor": ""}, "non-empty"),
        ({"detection": "sendas", "actor": "x"}, "is not one of"),
        ({"detection": "send-as", "actor": "x", "control": "audit-bypass", "identity": "x"}, "both"),
        ({"detection": "send-as", "actor": "x", "expires": "2027-6-30"}, "not a date"),
        ({"detection": "send-as", "actor": "x", "approved_by": ""}, "approved_by"),
    ],
)
def test_a_bad_detection_exception_is_refused_with_the_reason(entry, problem):
    register = exceptions(entry)
    assert not register.detections and problem in register.rejected[0]["problem"]


def test_detection_exceptions_leave_control_exceptions_as_they_were():
    register = exceptions(
        {"control": "audit-bypass", "identity": "svc-ok"},
        {"detection": "mass-delete", "actor": "svc-archiver@contoso.com"},
    )
    assert register.find("audit-bypass", "SVC-OK") is not None and len(register.valid) == 1
    assert len(register.detections) == 1 and not register.rejected


def test_the_products_own_writes_are_recorded_not_alerted():
    grant = admin(*GRANTS[0], AppId=OWN_APP)
    forward = admin(*FORWARDS[0], AppId=OWN_APP)
    evaluation = run(grant, forward)
    assert fired(evaluation) == []
    assert sorted(alert.detection for alert in evaluation.recorded) == ["mail-forwarding", "mailbox-permission"]


# ---- the baseline ---------------------------------------------------------------------------------------------------


def test_the_baseline_round_trips_through_json_and_stays_bounded():
    evaluation = run(*a_bit_of_everything(), baseline=Baseline())
    document = json.loads(json.dumps(evaluation.baseline.to_json()))
    assert Baseline.from_json(document) == evaluation.baseline
    assert evaluation.baseline.countries["ann@contoso.com"].keys() == {"GB", "ES", "JP"}
    a_month_later = run(
        sign_in("ann@contoso.com", NOW + timedelta(days=30), "81.2.69.142"), baseline=evaluation.baseline
    )
    assert a_month_later.baseline.countries["ann@contoso.com"].keys() == {"GB"}
    assert not a_month_later.baseline.send_as_pairs and not a_month_later.baseline.deletes


@pytest.mark.parametrize("document", [None, [], {"version": 2}, {"version": 1, "countries": {"a": {"GB": ["x", "y"]}}}])
def test_a_damaged_baseline_document_is_refused(document):
    with pytest.raises(ValueError):
        Baseline.from_json(document)
