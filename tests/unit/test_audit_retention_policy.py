"""audit-retention-policy as pure functions: effective retention per record type, the verdict and the fix plan."""

from __future__ import annotations

import pytest

from shared.config.settings import AuditPolicy
from shared.controls.audit_retention_policy import (
    CONTROL,
    EXCHANGE_RECORD_TYPES,
    POLICY_NAME,
    effective_retention,
    evaluate_retention_policies,
    nearest_duration,
    parse_policy,
    plan_retention_fix,
    snapshot_of,
)
from shared.controls.plans import PlanRefused
from shared.engine.runner import runnable
from shared.model import RunReport, Status

POLICY = AuditPolicy(retention_policy_check=True)


def row(name, priority, duration, record_types=None, users=None, operations=None, enabled=True):
    return {
        "Name": name,
        "Enabled": enabled,
        "Priority": priority,
        "RetentionDuration": duration,
        "RecordTypes": record_types or [],
        "UserIds": users or [],
        "Operations": operations or [],
    }


def days(rows, record_type="ExchangeItem"):
    return effective_retention(snapshot_of(rows).policies, record_type).days


def verdict(rows, policy=POLICY):
    return evaluate_retention_policies(snapshot_of(rows), policy)


# ---- effective retention ---------------------------------------------------------------------------------------


def test_no_policy_means_the_audit_standard_default_of_180_days():
    effective = effective_retention((), "ExchangeAdmin")
    assert (effective.days, effective.deciding) == (180, ())
    assert "default" in effective.words()


def test_a_policy_without_record_types_covers_every_exchange_type():
    assert {t: days([row("All", 5, "TwelveMonths")], t) for t in EXCHANGE_RECORD_TYPES} == dict.fromkeys(
        EXCHANGE_RECORD_TYPES, 365
    )


def test_a_record_type_filter_covers_only_the_types_it_names():
    rows = [row("Items", 5, "TwelveMonths", record_types=["ExchangeItem", "ExchangeItemGroup"])]
    assert days(rows, "ExchangeItem") == 365 and days(rows, "ExchangeAdmin") == 180


def test_a_higher_priority_shorter_policy_shortens_retention():
    # A lower Priority number is a higher priority: the 3-month policy at 1 wins over the year at 10.
    rows = [row("Year", 10, "TwelveMonths"), row("Short", 1, "ThreeMonths", record_types=["ExchangeAdmin"])]
    assert days(rows, "ExchangeAdmin") == 90
    assert days(rows, "ExchangeItem") == 365
    assert [p.name for p in effective_retention(snapshot_of(rows).policies, "ExchangeAdmin").deciding] == ["Short"]


def test_a_lower_priority_shorter_policy_changes_nothing():
    rows = [row("Year", 1, "TwelveMonths"), row("Short", 10, "ThreeMonths")]
    assert days(rows) == 365


def test_a_custom_policy_shorter_than_the_default_shortens_it():
    assert days([row("Week", 3, "SevenDays")]) == 7


def test_disabled_policies_do_not_count():
    assert days([row("Year", 1, "TwelveMonths", enabled=False)]) == 180
    assert days([row("Year", 5, "TwelveMonths"), row("Short", 1, "OneMonth", enabled=False)]) == 365


@pytest.mark.parametrize("scope", [{"users": ["ann@contoso.com"]}, {"operations": ["MailItemsAccessed"]}])
def test_a_scoped_policy_never_covers_all_users(scope):
    assert days([row("Some", 1, "TenYears", **scope)]) == 180


@pytest.mark.parametrize("scope", [{"users": ["ann@contoso.com"]}, {"operations": ["HardDelete"]}])
def test_a_scoped_shorter_policy_ranked_above_the_all_users_one_shortens_what_everyone_is_guaranteed(scope):
    rows = [row("Year", 10, "TwelveMonths"), row("Some", 2, "SixMonths", **scope)]
    effective = effective_retention(snapshot_of(rows).policies, "ExchangeItem")
    assert effective.days == 180 and "(some " in effective.words()


def test_a_scoped_shorter_policy_ranked_below_the_all_users_one_never_decides():
    rows = [row("Year", 1, "TwelveMonths"), row("Some", 5, "SixMonths", users=["ann@contoso.com"])]
    assert days(rows) == 365


def test_a_scoped_longer_policy_above_does_not_shorten():
    rows = [row("Year", 10, "TwelveMonths"), row("Execs", 1, "TenYears", users=["ceo@contoso.com"])]
    assert days(rows) == 365


def test_a_priority_tie_is_read_the_conservative_way():
    assert days([row("A", 4, "TenYears"), row("B", 4, "ThreeMonths")]) == 90


# ---- the verdict -----------------------------------------------------------------------------------------------


def test_every_type_kept_long_enough_is_compliant_and_actual_names_the_deciding_policy():
    result = verdict([row("Exchange 1y", 7, "TwelveMonths", record_types=list(EXCHANGE_RECORD_TYPES))])
    assert result.status is Status.COMPLIANT
    assert "365 days for ExchangeItem, ExchangeItemGroup, ExchangeItemAggregated, ExchangeAdmin" in result.actual
    assert "'Exchange 1y' TwelveMonths, priority 7" in result.actual


def test_one_short_type_is_noncompliant_and_says_which():
    result = verdict([row("Items", 7, "TwelveMonths", record_types=["ExchangeItem", "ExchangeItemGroup"])])
    assert result.status is Status.NON_COMPLIANT
    assert "ExchangeItemAggregated, ExchangeAdmin" in result.message
    assert "180 days for ExchangeItemAggregated, ExchangeAdmin (default" in result.actual
    assert [f["enough"] for f in result.details["findings"]] == [True, True, False, False]


def test_no_policy_is_noncompliant_against_the_cisa_year_but_compliant_against_180_days():
    assert verdict([]).status is Status.NON_COMPLIANT
    assert verdict([], AuditPolicy(retention_policy_check=True, min_search_retention_days=180)).status is (
        Status.COMPLIANT
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"Name": "x", "Enabled": "yes", "Priority": 1, "RetentionDuration": "TenYears"},
        {"Name": "x", "Enabled": True, "Priority": 0, "RetentionDuration": "TenYears"},
        {"Name": "x", "Enabled": True, "Priority": 1, "RetentionDuration": "Forever"},
        {"Name": "x", "Enabled": True, "Priority": 1, "RetentionDuration": "TenYears", "UserIds": [{"a": 1}]},
        {"Enabled": True, "Priority": 1, "RetentionDuration": "TenYears"},
        {"Name": "x", "Priority": 1, "RetentionDuration": "TenYears"},
        # A scope field the answer left out is unknown, not "all" (a one-user TenYears policy must not count).
        {
            "Name": "x",
            "Enabled": True,
            "Priority": 1,
            "RetentionDuration": "TenYears",
            "RecordTypes": [],
            "Operations": [],
        },
        {"Name": "x", "Enabled": True, "Priority": 1, "RetentionDuration": "TenYears", "UserIds": [], "Operations": []},
    ],
)
def test_an_unreadable_policy_fails_closed(broken):
    assert isinstance(parse_policy(broken), str)
    result = verdict([row("Year", 5, "TenYears"), broken])
    assert result.status is Status.ERROR and result.actual == "unreadable"


def test_a_cut_short_answer_fails_closed():
    snapshot = snapshot_of(
        [row("Year", 5, "TenYears")], ["There are more results available than are currently displayed."]
    )
    assert evaluate_retention_policies(snapshot, POLICY).status is Status.ERROR


def test_numbers_and_any_case_are_read_as_the_names_they_stand_for():
    policy = parse_policy({**row("N", 2, "twelvemonths"), "RecordTypes": [1], "Priority": "2"})
    assert not isinstance(policy, str)
    assert (policy.duration, policy.record_types, policy.priority) == ("TwelveMonths", ("ExchangeAdmin",), 2)


# ---- the plan --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minimum", "duration"),
    [
        (1, "SevenDays"),
        (180, "SixMonths"),
        (181, "NineMonths"),
        (365, "TwelveMonths"),
        (400, "ThreeYears"),
        (3650, "TenYears"),
    ],
)
def test_the_nearest_allowed_duration_at_or_above_the_minimum(minimum, duration):
    assert nearest_duration(minimum) == duration


def test_nothing_to_write_when_every_type_is_kept_long_enough():
    assert plan_retention_fix(snapshot_of([row("Year", 5, "TwelveMonths")]), POLICY) == []


def test_the_fix_creates_a_policy_for_the_exchange_types_above_the_shortening_policies():
    rows = [
        row("Long", 1, "TenYears", users=["ceo@contoso.com"]),
        row("Short", 40, "ThreeMonths"),
        row("Taken", 39, "TenYears", record_types=["SharePoint"]),
    ]
    [action] = plan_retention_fix(snapshot_of(rows), POLICY)
    assert action.cmdlet == "New-UnifiedAuditLogRetentionPolicy"
    assert action.parameters["RecordTypes"] == list(EXCHANGE_RECORD_TYPES)
    assert action.parameters["RetentionDuration"] == "TwelveMonths"
    assert "UserIds" not in action.parameters  # all users
    # Above "Short" (40), not on a taken number (39), and as low as possible so "Long" keeps deciding for its user.
    assert action.parameters["Priority"] == 38


def test_without_shortening_policies_the_new_policy_takes_the_lowest_priority():
    [action] = plan_retention_fix(snapshot_of([]), POLICY)
    assert action.parameters["Priority"] == 10000


def test_our_own_policy_is_corrected_rather_than_created_twice():
    [action] = plan_retention_fix(snapshot_of([row(POLICY_NAME, 10000, "SixMonths")]), POLICY)
    assert action.cmdlet == "Set-UnifiedAuditLogRetentionPolicy"
    assert action.parameters == {"Identity": POLICY_NAME, "RetentionDuration": "TwelveMonths", "Priority": 10000}


def test_no_free_priority_above_a_shortening_policy_is_refused_with_a_reason():
    with pytest.raises(PlanRefused, match="no free priority above the shortening policy 'Short'"):
        plan_retention_fix(snapshot_of([row("Short", 1, "ThreeMonths")]), POLICY)


def test_the_control_is_opt_in_and_a_person_decides_its_fix():
    assert CONTROL.safe_unattended is False and CONTROL.endpoint == "compliance"
    report = RunReport(command="check", tenant_id="t")
    assert runnable([CONTROL.id, "org-audit-enabled"], AuditPolicy(), report) == ["org-audit-enabled"]
    assert "AUDIT_RETENTION_POLICY_CHECK" in report.not_run[CONTROL.id]
    assert runnable([CONTROL.id], POLICY, RunReport(command="check", tenant_id="t")) == [CONTROL.id]
