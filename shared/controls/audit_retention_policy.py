"""audit-retention-policy: are Exchange audit records kept long enough in audit search (Purview retention policies)?

Read with `Get-UnifiedAuditLogRetentionPolicy` on the Security & Compliance endpoint (activity-feed.md §6). Opt-in
(AUDIT_RETENTION_POLICY_CHECK=true): reading the policies needs the Purview Organization Configuration role
(a Security & Compliance role group, or Entra Compliance Data Administrator or Compliance Administrator), which can
also delete them.

Effective retention, per Exchange record type, for all users (`effective_retention`, pure):
- only enabled policies count; a policy without RecordTypes covers every type;
- the highest-priority policy decides (a LOWER Priority number is a higher priority: 1 highest … 10000 lowest);
  custom policies always beat Microsoft's defaults, so a short policy shortens retention (§6.3);
- a policy for some users (UserIds) or some operations (Operations) never covers "all users"; but when it ranks
  above the policy that decides for everyone else, it decides for its part of the scope, so a shorter one
  shortens what every user is guaranteed. We count it even if higher-priority partial policies hide it for all of
  its users (conservative: at worst a NonCompliant a person can explain, never a false Compliant);
- no policy for everyone: the Audit (Standard) default, 180 days. Audit (Premium)'s default 1-year policy covers
  only E5-licensed users and is never returned by the cmdlet, so it is not counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.config.settings import AuditPolicy
from shared.controls.base import Column, Control, ReportWording, compliance_frameworks
from shared.controls.plans import PlanRefused
from shared.controls.reading import TRUNCATION_MARKER, RunContext
from shared.model import Action, ControlResult, Status

ID = "audit-retention-policy"
CMDLET = "Get-UnifiedAuditLogRetentionPolicy"
FIELDS = ("Name", "Enabled", "Priority", "RetentionDuration", "RecordTypes", "Operations", "UserIds")
EXCHANGE_RECORD_TYPES = ("ExchangeItem", "ExchangeItemGroup", "ExchangeItemAggregated", "ExchangeAdmin")
# The numbers the audit schema gives these types (activity-feed.md §2), should an answer carry numbers.
RECORD_TYPE_NUMBERS = {1: "ExchangeAdmin", 2: "ExchangeItem", 3: "ExchangeItemGroup", 50: "ExchangeItemAggregated"}
# Every RetentionDuration value (read all ten, §6.3), in days; a write takes the nearest one at or above the minimum.
DURATION_DAYS = {
    "SevenDays": 7,
    "OneMonth": 30,
    "ThreeMonths": 90,
    "SixMonths": 180,
    "NineMonths": 270,
    "TwelveMonths": 365,
    "ThreeYears": 1095,
    "FiveYears": 1825,
    "SevenYears": 2555,
    "TenYears": 3650,
}
STANDARD_DEFAULT_DAYS = 180  # Audit (Standard), records since 17 October 2023 (§6.5)
LOWEST_PRIORITY = 10000
MAX_POLICIES = 50
POLICY_NAME = "Mailbox Audit Guard - Exchange audit retention"
POLICY_DESCRIPTION = "Keeps Exchange mailbox and admin audit records searchable for the minimum (mailbox-audit-guard)."
ROLES = (
    "Purview role Organization Configuration (a Security & Compliance role group, or the Entra role Compliance Data "
    "Administrator or Compliance Administrator)"
)
NOT_RUN = (
    "switched off (AUDIT_RETENTION_POLICY_CHECK is not true): reading Purview audit retention policies needs the "
    f"{ROLES}, which can also delete them, so this check is opt-in"
)


@dataclass(frozen=True)
class RetentionPolicy:
    """One Purview audit retention policy as read; empty tuples mean "all" (types, operations, users)."""

    name: str
    enabled: bool
    priority: int
    duration: str
    record_types: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        return DURATION_DAYS[self.duration]

    @property
    def partial(self) -> bool:
        """Scoped to some users or some operations: it never decides for all users of a record type."""
        return bool(self.operations or self.user_ids)

    def covers(self, record_type: str) -> bool:
        return not self.record_types or record_type.lower() in {t.lower() for t in self.record_types}

    def words(self) -> str:
        scope = " (some users)" if self.user_ids else ""
        scope += " (some operations)" if self.operations else ""
        return f"'{self.name}' {self.duration}, priority {self.priority}{scope}"


@dataclass(frozen=True)
class RetentionSnapshot:
    """Every policy the cmdlet returned; `problems` name what could not be read (then the verdict is Error)."""

    policies: tuple[RetentionPolicy, ...]
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Effective:
    """The retention every user is guaranteed for one record type, and the policies that decide it."""

    record_type: str
    days: int
    deciding: tuple[RetentionPolicy, ...]  # empty: the Audit (Standard) default decides

    def words(self) -> str:
        if not self.deciding:
            return f"default (Audit Standard, {STANDARD_DEFAULT_DAYS} days)"
        return "; ".join(policy.words() for policy in self.deciding)


def _strings(value: Any, name: str, field_name: str) -> tuple[str, ...] | str:
    """A multi-valued property as a tuple; a problem text when it is neither empty, a string nor a list of them."""
    if value in (None, "", []):
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for raw in items:
        item = raw
        if field_name == "RecordTypes" and isinstance(raw, int) and not isinstance(raw, bool):
            item = RECORD_TYPE_NUMBERS.get(raw, str(raw))
        if not isinstance(item, str) or not item.strip():
            return f"policy '{name}': {field_name} holds {raw!r}, not a name"
        out.append(item.strip())
    return tuple(out)


def parse_policy(row: Mapping[str, Any]) -> RetentionPolicy | str:
    """One row as a policy, or the text of what makes it unreadable (fail closed: the verdict becomes Error)."""
    name = row.get("Name")
    if not isinstance(name, str) or not name.strip():
        return f"a policy without a Name ({sorted(row)[:6]})"
    enabled, priority, duration = row.get("Enabled"), row.get("Priority"), row.get("RetentionDuration")
    if not isinstance(enabled, bool):
        return f"policy '{name}': Enabled is {enabled!r}, not a boolean"
    if isinstance(priority, str) and priority.strip().isdigit():
        priority = int(priority)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= LOWEST_PRIORITY:
        return f"policy '{name}': Priority is {priority!r}, not a number from 1 to {LOWEST_PRIORITY}"
    canonical = {key.lower(): key for key in DURATION_DAYS}
    if not isinstance(duration, str) or duration.lower() not in canonical:
        return f"policy '{name}': RetentionDuration {duration!r} is not one of {', '.join(DURATION_DAYS)}"
    lists: list[tuple[str, ...]] = []
    for key in ("RecordTypes", "Operations", "UserIds"):
        if key not in row:  # absent is not "all": read as all, a one-user policy would cover everyone
            return f"policy '{name}': {key} is missing from the answer, so its scope is unknown"
        value = _strings(row[key], name, key)
        if isinstance(value, str):
            return value
        lists.append(value)
    return RetentionPolicy(name, enabled, priority, canonical[duration.lower()], *lists)


def snapshot_of(rows: Sequence[Mapping[str, Any]], warnings: Sequence[str] = ()) -> RetentionSnapshot:
    policies: list[RetentionPolicy] = []
    problems: list[str] = []
    for row in rows:
        parsed = parse_policy(row)
        if isinstance(parsed, str):
            problems.append(parsed)
        else:
            policies.append(parsed)
    if any(TRUNCATION_MARKER in warning.lower() for warning in warnings):
        problems.append("the answer was cut short (more results available)")
    return RetentionSnapshot(tuple(policies), tuple(problems), tuple(warnings))


def read_retention_policies(context: RunContext) -> RetentionSnapshot:
    """Every audit retention policy, on the Security & Compliance endpoint (at most 50 exist)."""
    result = context.client_for("compliance").invoke(CMDLET, select=FIELDS)
    return snapshot_of(result.rows, result.warnings)


def effective_retention(policies: Sequence[RetentionPolicy], record_type: str) -> Effective:
    """The retention all users are guaranteed for `record_type` (module docstring); pure."""
    # Ties (priorities should be unique) go to the shorter policy: the conservative reading.
    applicable = sorted(
        (p for p in policies if p.enabled and p.covers(record_type)), key=lambda p: (p.priority, p.days, p.name)
    )
    full = next((p for p in applicable if not p.partial), None)
    base = full.days if full is not None else STANDARD_DEFAULT_DAYS
    above = [p for p in applicable if p.partial and (full is None or p.priority < full.priority)]
    days = min([base, *(p.days for p in above)])
    deciding = [p for p in above if p.days == days]
    if full is not None and full.days == days:
        deciding.insert(0, full)
    return Effective(record_type, days, tuple(deciding))


def _expected(minimum: int) -> str:
    return f"Exchange audit records ({', '.join(EXCHANGE_RECORD_TYPES)}) kept >= {minimum} days for all users"


def _grouped(effective: Sequence[Effective]) -> str:
    """ "365 days for ExchangeItem, ExchangeAdmin ('A' TwelveMonths, priority 1); 180 days for ..." """
    groups: dict[tuple[int, str], list[str]] = {}
    for item in effective:
        groups.setdefault((item.days, item.words()), []).append(item.record_type)
    return "; ".join(f"{days} days for {', '.join(types)} ({words})" for (days, words), types in groups.items())


def evaluate_retention_policies(snapshot: RetentionSnapshot, policy: AuditPolicy) -> ControlResult:
    """Compliant when every Exchange record type is kept at least the minimum for all users; unreadable: Error."""
    minimum = policy.min_search_retention_days
    expected = _expected(minimum)
    details: dict[str, Any] = {
        "minimum_days": minimum,
        "policies_read": len(snapshot.policies) + len(snapshot.problems),
        "policies": [
            {
                "name": p.name,
                "enabled": p.enabled,
                "priority": p.priority,
                "duration": p.duration,
                "record_types": ", ".join(p.record_types) or "all",
                "operations": ", ".join(p.operations) or "all",
                "users": ", ".join(p.user_ids) or "all",
            }
            for p in sorted(snapshot.policies, key=lambda p: p.priority)
        ],
    }
    if snapshot.warnings:
        details["warnings"] = list(snapshot.warnings)
    if snapshot.problems:
        details["problems"] = list(snapshot.problems)
        return ControlResult(
            ID,
            Status.ERROR,
            expected,
            "unreadable",
            f"{len(snapshot.problems)} retention polic{'y' if len(snapshot.problems) == 1 else 'ies'} could not be "
            f"read, so the effective retention is unknown: {snapshot.problems[0]}",
            details,
        )
    effective = [effective_retention(snapshot.policies, record_type) for record_type in EXCHANGE_RECORD_TYPES]
    details["findings"] = [
        {
            "record_type": item.record_type,
            "days": item.days,
            "decided_by": item.words(),
            "enough": item.days >= minimum,
        }
        for item in effective
    ]
    actual = _grouped(effective)
    short = [item for item in effective if item.days < minimum]
    premium = (
        " Audit (Premium) users also fall under Microsoft's default 1-year policy, which the cmdlet never returns: "
        "it covers E5-licensed users only, so it is not counted for all users."
    )
    if short:
        return ControlResult(
            ID,
            Status.NON_COMPLIANT,
            expected,
            actual,
            f"Exchange audit records are kept less than {minimum} days for "
            f"{', '.join(item.record_type for item in short)}: older records drop out of audit search. Fix "
            f"(a person decides: beyond 180 days it needs Audit Premium licences): New-UnifiedAuditLogRetentionPolicy "
            f"-RecordTypes {','.join(EXCHANGE_RECORD_TYPES)} -RetentionDuration {nearest_duration(minimum)} with a "
            "priority above the shortening policies." + premium,
            details,
        )
    return ControlResult(
        ID,
        Status.COMPLIANT,
        expected,
        actual,
        f"Exchange audit records are kept at least {minimum} days for all users, for every Exchange record type "
        "(effective retention, policy priorities taken into account).",
        details,
    )


def nearest_duration(minimum_days: int) -> str:
    """The shortest RetentionDuration of at least `minimum_days` (TenYears for anything above nine years)."""
    return next((name for name, days in DURATION_DAYS.items() if days >= minimum_days), "TenYears")


def free_priority(snapshot: RetentionSnapshot, duration: str) -> int:
    """The priority for our policy: above (numerically below) every enabled policy for an Exchange record type that
    is shorter than `duration`, and otherwise as low as possible, so that no longer policy is overridden."""
    others = [p for p in snapshot.policies if p.name.lower() != POLICY_NAME.lower()]
    shortening = [
        p
        for p in others
        if p.enabled and p.days < DURATION_DAYS[duration] and any(p.covers(t) for t in EXCHANGE_RECORD_TYPES)
    ]
    ceiling = min((p.priority for p in shortening), default=LOWEST_PRIORITY + 1)
    taken = {p.priority for p in others}
    found = next((n for n in range(ceiling - 1, 0, -1) if n not in taken), None)
    if found is None:
        blocking = min(shortening, key=lambda p: p.priority)
        raise PlanRefused(
            f"no free priority above the shortening policy {blocking.words()}: every priority from 1 to "
            f"{ceiling - 1} is taken. A person must lower or remove that policy first (Set- or "
            "Remove-UnifiedAuditLogRetentionPolicy)."
        )
    return found


def plan_retention_fix(snapshot: RetentionSnapshot, policy: AuditPolicy) -> list[Action]:
    """Create (or correct) our policy for the Exchange record types and all users; nothing when already enough."""
    minimum = policy.min_search_retention_days
    if snapshot.problems or all(
        effective_retention(snapshot.policies, t).days >= minimum for t in EXCHANGE_RECORD_TYPES
    ):
        return []
    duration = nearest_duration(minimum)
    priority = free_priority(snapshot, duration)
    ours = next((p for p in snapshot.policies if p.name.lower() == POLICY_NAME.lower()), None)
    if ours is not None:
        return [
            Action(
                "Set-UnifiedAuditLogRetentionPolicy",
                {"Identity": ours.name, "RetentionDuration": duration, "Priority": priority},
                f"Set-UnifiedAuditLogRetentionPolicy -Identity '{ours.name}' -RetentionDuration {duration} "
                f"-Priority {priority}",
            )
        ]
    if len(snapshot.policies) >= MAX_POLICIES:
        raise PlanRefused(f"the tenant already has {MAX_POLICIES} audit retention policies, the most Purview allows")
    return [
        Action(
            "New-UnifiedAuditLogRetentionPolicy",
            {
                "Name": POLICY_NAME,
                "Description": POLICY_DESCRIPTION,
                "RecordTypes": list(EXCHANGE_RECORD_TYPES),
                "RetentionDuration": duration,
                "Priority": priority,
            },
            f"New-UnifiedAuditLogRetentionPolicy -Name '{POLICY_NAME}' -RecordTypes "
            f"{','.join(EXCHANGE_RECORD_TYPES)} -RetentionDuration {duration} -Priority {priority}",
        )
    ]


def not_run_reason(policy: AuditPolicy) -> str | None:
    return None if policy.retention_policy_check else NOT_RUN


CONTROL = Control(
    id=ID,
    title="Exchange audit records kept long enough in audit search (audit retention policies)",
    question="Does every Exchange audit record type stay searchable for the minimum, for all users, once Purview "
    "audit retention policies and their priorities are applied (Get-UnifiedAuditLogRetentionPolicy)?",
    expected="effective retention of ExchangeItem, ExchangeItemGroup, ExchangeItemAggregated and ExchangeAdmin >= "
    "AUDIT_MIN_SEARCH_RETENTION_DAYS (default 365) for all users",
    remediation="New-UnifiedAuditLogRetentionPolicy -Name <name> -RecordTypes ExchangeItem,ExchangeItemGroup,"
    "ExchangeItemAggregated,ExchangeAdmin -RetentionDuration <nearest duration >= minimum> -Priority <above the "
    "shortening policies> (Security & Compliance PowerShell; Audit Premium beyond 180 days)",
    frameworks=compliance_frameworks("none (CIS has no audit retention control)", "none", "MS.SECURITYSUITE.5.2v1"),
    read=read_retention_policies,
    evaluate=evaluate_retention_policies,
    plan_fix=plan_retention_fix,
    # Depends on licences (Audit Premium beyond 180 days) and overrides existing policies: a person decides.
    safe_unattended=False,
    endpoint="compliance",
    not_run=not_run_reason,
    wording=ReportWording(
        note="Read on the Security & Compliance endpoint. The effective retention takes priorities into account "
        "(a lower Priority number wins; a shorter policy ranked higher shortens retention, also one for some users "
        "only); without a policy for all users, Audit (Standard) keeps records 180 days. Microsoft's Audit "
        "(Premium) 1-year default covers E5-licensed users only and is not counted. Opt-in "
        f"(AUDIT_RETENTION_POLICY_CHECK=true): reading the policies needs the {ROLES}.",
        fact_labels={
            "minimum_days": "Minimum (AUDIT_MIN_SEARCH_RETENTION_DAYS, days)",
            "policies_read": "Retention policies read",
            "policies": "Audit retention policies (by priority)",
            "problems": "Policies that could not be read",
        },
        finding_columns=(
            Column("Record type", "record_type"),
            Column("Effective retention (days)", "days"),
            Column("Decided by", "decided_by"),
            Column("At least the minimum", "enough", "yes_no"),
        ),
        table_widths=(22, 18, 45, 15),
    ),
)
