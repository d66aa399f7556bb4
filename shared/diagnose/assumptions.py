"""What `diagnose` checks, judged from what it observed. Pure: observations in, verdicts out (no I/O).

Every assumption the client makes about the real Exchange admin API (exchange-admin-api.md §10) becomes one
`Assumption` with what was seen and, when it did not hold, what to do. Observations never hold a token, a secret or
a header outside an explicit allow-list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.jwt_claims import unverified_claims

MANAGE_AS_APP = "Exchange.ManageAsApp"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"  # Office 365 Exchange Online, also a valid `aud`
# Claims worth showing; everything else in the token (and the token itself) stays out of the report.
SHOWN_CLAIMS = ("aud", "iss", "tid", "appid", "azp", "idtyp", "roles", "scp", "oid", "ver", "exp")
# Response headers that tell an administrator (or Microsoft support) about throttling and routing.
HEADERS_OF_INTEREST = (
    "rate-limit-limit",
    "rate-limit-remaining",
    "rate-limit-reset",
    "x-concurrencycount",
    "x-calculatedbetarget",
    "x-exceptiontype",
    "retry-after",
    "request-id",
    "x-ms-diagnostics",
)
TRUNCATION_MARKER = "more results available"


class Verdict(StrEnum):
    HELD = "held"  # the assumption was tested and is true in this tenant
    FAILED = "failed"  # tested and false: named, with what to do
    INFO = "info"  # recorded for the record (a body shape, a header); nothing to hold or fail
    SKIPPED = "skipped"  # not tested (opt-in, or an earlier step could not run)


@dataclass(frozen=True)
class Assumption:
    id: str
    title: str
    verdict: Verdict
    observed: str
    advice: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Observation:
    """One HTTP answer from Exchange: where it came from and what it looked like, never what it carried."""

    cmdlet: str
    status: int
    elapsed_ms: float
    host: str
    anchor: str | None
    headers: dict[str, str] = field(default_factory=dict)
    location_host: str | None = None  # for a redirect
    page: int | None = None
    body_shape: str | None = None  # e.g. "value: list of 2", "value: null", "no value key"
    next_link: bool | None = None
    warnings: list[str] = field(default_factory=list)
    adminapi_errors: int = 0


@dataclass
class DiagnoseReport:
    tenant_id: str
    endpoint: str
    started_at: datetime
    tool_version: str
    finished_at: datetime | None = None
    assumptions: list[Assumption] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    token_claims: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # diagnose could not run at all

    @property
    def failed(self) -> list[Assumption]:
        return [a for a in self.assumptions if a.verdict is Verdict.FAILED]

    @property
    def exit_code(self) -> int:
        """0 every assumption held, 1 one did not, 2 diagnose could not run."""
        if self.error is not None:
            return 2
        return 1 if self.failed else 0


# -- the token ----------------------------------------------------------------------------------------------------


def token_claims(token: str) -> dict[str, Any]:
    """The shown claims of a JWT access token, decoded without verification (Exchange verifies it); {} if unreadable."""
    claims = unverified_claims(token)
    return {name: claims[name] for name in SHOWN_CLAIMS if name in claims}


def judge_token(claims: Mapping[str, Any], *, audience: str, tenant_id: str) -> list[Assumption]:
    """The token is for Exchange, for this tenant, app-only, and carries Exchange.ManageAsApp."""
    if not claims:
        return [
            Assumption(
                "token",
                "The access token is a readable JWT",
                Verdict.FAILED,
                "the token is not a JWT",
                "Check EXO_AUTH_MODE and the identity's sign-in logs in Entra ID.",
            )
        ]
    aud = str(claims.get("aud", ""))
    roles = [str(role) for role in claims.get("roles") or []] if isinstance(claims.get("roles"), list) else []
    wanted = {audience.rstrip("/").lower(), EXCHANGE_APP_ID}
    results = [
        Assumption(
            "token.audience",
            "The token's audience is Exchange Online in the configured cloud",
            Verdict.HELD if aud.rstrip("/").lower() in wanted else Verdict.FAILED,
            f"aud = {aud or 'missing'}",
            "The token was issued for another resource: check EXO_CLOUD / EXO_ENDPOINT.",
        ),
        Assumption(
            "token.tenant",
            "The token was issued by the configured tenant",
            Verdict.HELD if str(claims.get("tid", "")).lower() == tenant_id.lower() else Verdict.FAILED,
            f"tid = {claims.get('tid', 'missing')}",
            "Check EXO_TENANT_ID and the identity's home tenant.",
        ),
        Assumption(
            "token.app-only",
            "The token is app-only and holds Exchange.ManageAsApp",
            Verdict.HELD if MANAGE_AS_APP in roles and "scp" not in claims else Verdict.FAILED,
            f"roles = {', '.join(roles) or 'none'}" + ("; delegated scopes present" if "scp" in claims else ""),
            "Grant the app role: python -m shared grant-permissions --principal-id <object id>; a new token "
            "carries it after up to an hour.",
        ),
    ]
    return results


def judge_endpoint(endpoint: str, cloud: str, cloud_default: str) -> Assumption:
    """Which Exchange host this run talks to (EXO_ENDPOINT overrides the cloud's); China has two candidates."""
    overridden = endpoint.rstrip("/") != cloud_default.rstrip("/")
    china = (
        " For China, Microsoft's admin API docs name https://outlook.office365.cn and the PowerShell module "
        "uses https://partner.outlook.cn (the default); if one fails, try the other with EXO_ENDPOINT."
        if cloud == "china"
        else ""
    )
    return Assumption(
        "endpoint",
        "The Exchange admin API host for this cloud",
        Verdict.INFO,
        f"{endpoint} (cloud {cloud}{', set by EXO_ENDPOINT' if overridden else ''}).{china}",
        details={"endpoint": endpoint, "cloud": cloud, "overridden": overridden},
    )


def judge_dehydrated(is_dehydrated: Any) -> Assumption:
    """A dehydrated tenant needs Enable-OrganizationCustomization, then up to 60 minutes, before org-wide fixes."""
    title = "The tenant is customised (not dehydrated)"
    if is_dehydrated is True:
        return Assumption(
            "tenant.dehydrated",
            title,
            Verdict.INFO,
            "IsDehydrated = True: the first org-wide fix runs Enable-OrganizationCustomization and is "
            "Deferred; writes work after the customisation has propagated (up to 60 minutes)",
        )
    return Assumption(
        "tenant.dehydrated",
        title,
        Verdict.INFO,
        f"IsDehydrated = {is_dehydrated!r}" if is_dehydrated is not False else "IsDehydrated = False",
    )


# -- reads --------------------------------------------------------------------------------------------------------


def judge_read(
    cmdlet: str,
    *,
    rows: Sequence[Mapping[str, Any]] | None,
    error: str | None,
    singleton: bool,
    required: str | None,
    elapsed_ms: float | None,
) -> Assumption:
    """One read cmdlet answers: a singleton exactly one row carrying `required`; a list any number of rows."""
    ident = f"read.{cmdlet}"
    title = f"{cmdlet} can be read app-only"
    timing = f" in {elapsed_ms:.0f} ms" if elapsed_ms is not None else ""
    if error is not None or rows is None:
        return Assumption(
            ident,
            title,
            Verdict.FAILED,
            f"failed{timing}: {error}",
            "See the error; a 403 names a missing Exchange role (README, Permissions).",
        )
    if singleton and len(rows) != 1:
        return Assumption(
            ident,
            title,
            Verdict.FAILED,
            f"{len(rows)} objects{timing}, expected exactly one",
            "Report this answer: the client treats it as unreadable (fail closed).",
        )
    if required is not None and rows and required not in rows[0]:
        return Assumption(
            ident,
            title,
            Verdict.FAILED,
            f"the answer has no {required}{timing}",
            "Report this answer: the control reads it as unknown (Error).",
        )
    return Assumption(ident, title, Verdict.HELD, f"{len(rows)} object{'s' if len(rows) != 1 else ''}{timing}")


def judge_paging(
    cmdlet: str,
    *,
    pages: Sequence[Sequence[str]],
    anchors: Sequence[str | None],
    page_size: int,
    complete: bool,
    error: str | None,
) -> Assumption:
    """Tiny pages follow `@odata.nextLink` to the next page without duplicates, the anchor kept on every page."""
    ident = f"paging.{cmdlet}"
    title = f"{cmdlet} pages through @odata.nextLink app-only (anchor kept, no duplicates)"
    sizes = [len(page) for page in pages]
    details: dict[str, Any] = {"page_sizes": sizes, "page_size_asked": page_size}
    if error is not None:
        return Assumption(
            ident,
            title,
            Verdict.FAILED,
            f"after {len(pages)} pages: {error}",
            "Paging is needed for tenants over 1000 objects; send this report to the maintainers.",
            details,
        )
    identities = [identity for page in pages for identity in page]
    duplicates = sorted({identity for identity in identities if identities.count(identity) > 1})
    if duplicates:
        return Assumption(
            ident,
            title,
            Verdict.FAILED,
            f"{len(duplicates)} objects on more than one page",
            "Pages overlap: counts would be wrong; send this report to the maintainers.",
            {**details, "duplicates": duplicates[:10]},
        )
    if len(set(anchors)) > 1 or None in anchors:
        return Assumption(
            ident,
            title,
            Verdict.FAILED,
            "the X-AnchorMailbox header changed between pages",
            "A client bug: send this report to the maintainers.",
            details,
        )
    if len(pages) < 2:
        verdict = Verdict.INFO if complete else Verdict.FAILED
        return Assumption(
            ident,
            title,
            verdict,
            f"one page of {sizes[0] if sizes else 0}: too few objects to page"
            if complete
            else "only one page and no end",
            "",
            details,
        )
    more = "" if complete else f" (stopped after {len(pages)} pages)"
    return Assumption(
        ident, title, Verdict.HELD, f"{len(pages)} pages of {', '.join(map(str, sizes))}{more}", details=details
    )


def judge_filter_forms(
    *, quoted: int | None, quoted_error: str | None, dollar: int | None, dollar_error: str | None
) -> Assumption:
    """The quoted boolean form ('True') works in -Filter; what the PowerShell form ($true) does is recorded."""
    title = "Booleans in -Filter are sent quoted ('True'), as the ExchangeOnlineManagement module does"
    if quoted_error is not None or quoted is None:
        return Assumption(
            "filter.booleans",
            title,
            Verdict.FAILED,
            f"the quoted form failed: {quoted_error}",
            "Switch MAILBOX_AUDIT_CHECK_EXPLICIT_ENABLE off and report this answer.",
        )
    dollar_text = f"refused ({dollar_error})" if dollar_error is not None else f"{dollar} mailboxes"
    return Assumption(
        "filter.booleans",
        title,
        Verdict.HELD,
        f"quoted form: {quoted} mailboxes; $true form: {dollar_text}",
        details={"quoted": quoted, "dollar": dollar, "dollar_refused": dollar_error is not None},
    )


def judge_redirects(observations: Sequence[Observation]) -> Assumption:
    """Whether Exchange redirected us, and where to."""
    title = "Exchange answers at the configured host (or redirects only within it)"
    redirects = [obs for obs in observations if 300 <= obs.status < 400]
    if not redirects:
        return Assumption("redirects", title, Verdict.HELD, "no redirect")
    hosts = sorted({obs.location_host or "no Location" for obs in redirects})
    return Assumption(
        "redirects", title, Verdict.INFO, f"{len(redirects)} redirects, to {', '.join(hosts)}", details={"hosts": hosts}
    )


def summarise_answers(observations: Sequence[Observation]) -> list[Assumption]:
    """For the record: empty-answer body shapes, warning texts, headers of interest, timings."""
    empty = sorted(
        {
            f"{obs.cmdlet}: {obs.body_shape}"
            for obs in observations
            if obs.body_shape is not None
            and (obs.body_shape == "value: list of 0" or not obs.body_shape.startswith("value: list of "))
        }
    )
    warnings = sorted({text for obs in observations for text in obs.warnings})
    paging_warning = [
        obs for obs in observations if obs.next_link and any(TRUNCATION_MARKER in text.lower() for text in obs.warnings)
    ]
    headers: dict[str, list[str]] = {}
    for obs in observations:
        for name, value in obs.headers.items():
            if value not in headers.setdefault(name, []):
                headers[name].append(value)
    timings = {obs.cmdlet: round(obs.elapsed_ms) for obs in observations}
    return [
        Assumption(
            "answers.empty-shapes",
            "How Exchange shapes an answer without rows",
            Verdict.INFO,
            "; ".join(empty) or "no empty answer seen",
            details={"shapes": empty},
        ),
        Assumption(
            "answers.warnings",
            "Warning texts Exchange sent",
            Verdict.INFO,
            f"{len(warnings)} distinct"
            + (
                f"; the truncation text rode on {len(paging_warning)} pages that had a next page"
                if paging_warning
                else ""
            ),
            details={"warnings": warnings[:50]},
        ),
        Assumption(
            "answers.headers",
            "Throttling and routing headers",
            Verdict.INFO,
            ", ".join(sorted(headers)) or "none of interest",
            details={"headers": headers},
        ),
        Assumption(
            "answers.timings",
            "Milliseconds per cmdlet (last answer)",
            Verdict.INFO,
            ", ".join(f"{cmdlet} {ms}" for cmdlet, ms in timings.items()),
            details={"timings": timings},
        ),
    ]


WRITTEN_PROPERTIES = ("AuditAdmin", "AuditDelegate", "AuditOwner", "AuditLogAgeLimit", "DefaultAuditSet")


def judge_write_test(
    *,
    mailbox: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    added: str | None,
    error: str | None,
) -> Assumption:
    """The write shapes (hashtable Add, AuditLogAgeLimit) are accepted and the read-back shows no change at all."""
    title = f"Set-Mailbox write shapes are accepted (test mailbox {mailbox})"
    if error is not None or before is None or after is None:
        return Assumption(
            "write.shapes",
            title,
            Verdict.FAILED,
            f"failed: {error}",
            "The remediation writes would fail the same way; send this report to the maintainers.",
        )
    changes = [name for name in WRITTEN_PROPERTIES if _comparable(before.get(name)) != _comparable(after.get(name))]
    details = {"added": added, "before": dict(before), "after": dict(after)}
    if changes:
        restore = (
            " Restore DefaultAuditSet: Set-Mailbox -Identity <test mailbox> -DefaultAuditSet Admin,Delegate,Owner."
            if "DefaultAuditSet" in changes
            else ""
        )
        return Assumption(
            "write.shapes",
            title,
            Verdict.FAILED,
            f"the read-back differs in {', '.join(changes)}",
            f"A write of values the mailbox already had changed it: send this report.{restore}",
            details,
        )
    if added is None:
        return Assumption(
            "write.shapes",
            title,
            Verdict.HELD,
            "the same AuditLogAgeLimit was accepted and read back unchanged; the hashtable Add was not "
            "tried: every logon type is managed (DefaultAuditSet), and adding would freeze it. Name a "
            "mailbox with a customised list to prove it.",
            details=details,
        )
    return Assumption(
        "write.shapes",
        title,
        Verdict.HELD,
        f"@{{Add=...}} on {added} and the same AuditLogAgeLimit accepted; read back unchanged",
        details=details,
    )


def _comparable(value: Any) -> Any:
    return sorted(str(item).lower() for item in value) if isinstance(value, list) else value


# -- output -------------------------------------------------------------------------------------------------------

SYMBOLS = {Verdict.HELD: "✓", Verdict.FAILED: "✗", Verdict.INFO: "•", Verdict.SKIPPED: "○"}


def report_document(report: DiagnoseReport) -> dict[str, Any]:
    return {
        "tool": "mailbox-audit-guard",
        "tool_version": report.tool_version,
        "command": "diagnose",
        "tenant_id": report.tenant_id,
        "endpoint": report.endpoint,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "exit_code": report.exit_code,
        "error": report.error,
        "failed": [a.id for a in report.failed],
        "token_claims": report.token_claims,
        "assumptions": [
            {
                "id": a.id,
                "title": a.title,
                "verdict": str(a.verdict),
                "observed": a.observed,
                "advice": a.advice,
                "details": dict(a.details),
            }
            for a in report.assumptions
        ],
        "observations": [vars(obs) for obs in report.observations],
    }


def render_text(report: DiagnoseReport) -> str:
    lines = [
        f"Mailbox Audit Guard {report.tool_version}: diagnose of tenant {report.tenant_id} at {report.endpoint}",
        "",
    ]
    if report.error is not None:
        lines += [f"Could not run: {report.error}", ""]
    for item in report.assumptions:
        lines.append(f"{SYMBOLS[item.verdict]} {item.verdict.upper():7} {item.title}")
        lines.append(f"            {item.observed}")
        if item.verdict is Verdict.FAILED and item.advice:
            lines.append(f"            → {item.advice}")
    held = sum(1 for a in report.assumptions if a.verdict is Verdict.HELD)
    lines += [
        "",
        f"{held} held, {len(report.failed)} failed"
        + (f" ({', '.join(a.id for a in report.failed)})" if report.failed else "")
        + f"; exit code {report.exit_code}. Send `diagnose --json` output to the maintainers: it holds no "
        "token or secret.",
    ]
    return "\n".join(lines)
