"""`diagnose`: run every assumption about the real Exchange admin API once against the configured tenant.

Read-only unless a test mailbox is named. Each probe records what it saw (`assumptions.Observation`) through a
`requests` response hook and the client's payload hook; the judging is pure (`assumptions`). The token itself, the
Authorization header and every header outside the allow-list stay out of the report.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from shared import __version__
from shared.config.settings import Settings
from shared.controls.audit_bypass import BYPASS_FIELDS
from shared.controls.audit_log_search import ADMIN_AUDIT_LOG_FIELDS
from shared.controls.org_config import ORG_CONFIG_FIELDS
from shared.controls.plans import HASHTABLE
from shared.diagnose import assumptions as judge
from shared.diagnose.assumptions import Assumption, DiagnoseReport, Observation, Verdict
from shared.exchange import client as exchange_client
from shared.exchange.auth import TokenError, token_provider_for
from shared.exchange.client import ExchangeClient, RetryPolicy
from shared.exchange.errors import ExchangeError

PAGE_SIZE = 2  # tiny pages prove paging on any tenant with three or more objects
MAX_PAGES = 3
FILTER_SAMPLE = 100  # the boolean-filter comparison counts at most this many mailboxes
QUOTED_FILTER = "AuditEnabled -ne 'True' -and RecipientTypeDetails -eq 'UserMailbox'"
DOLLAR_FILTER = "AuditEnabled -ne $true -and RecipientTypeDetails -eq 'UserMailbox'"
NOBODY_FILTER = "UserPrincipalName -eq 'diagnose-nobody@mailbox-audit-guard.invalid'"
DIAGNOSE_SECONDS = 300.0
TEST_MAILBOX_FIELDS = (
    "Guid",
    "ExternalDirectoryObjectId",
    "UserPrincipalName",
    "AuditAdmin",
    "AuditDelegate",
    "AuditOwner",
    "AuditLogAgeLimit",
    "DefaultAuditSet",
)


class Recorder:
    """Collects one Observation per HTTP answer; the payload hook adds the body's shape to the latest one."""

    def __init__(self) -> None:
        self.observations: list[Observation] = []

    def on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        request = response.request
        parts = urlsplit(response.url or "")
        location = response.headers.get("Location")
        self.observations.append(
            Observation(
                cmdlet=str(request.headers.get("X-CmdletName", "?")) if request is not None else "?",
                status=response.status_code,
                elapsed_ms=response.elapsed.total_seconds() * 1000,
                host=f"{parts.hostname}:{parts.port or 443}",
                anchor=str(request.headers["X-AnchorMailbox"])
                if request is not None and "X-AnchorMailbox" in request.headers
                else None,
                headers={
                    name: response.headers[name][:200] for name in judge.HEADERS_OF_INTEREST if name in response.headers
                },
                location_host=urlsplit(location).hostname if location else None,
            )
        )
        return response

    def on_payload(self, cmdlet: str, page: int, payload: Mapping[str, Any]) -> None:
        if not self.observations:
            return
        latest = self.observations[-1]
        value = payload.get("value", _ABSENT)
        latest.page = page
        latest.body_shape = (
            "no value key"
            if value is _ABSENT
            else "value: null"
            if value is None
            else f"value: list of {len(value)}"
            if isinstance(value, list)
            else f"value: {type(value).__name__}"
        )
        latest.next_link = isinstance(payload.get("@odata.nextLink"), str)
        warnings = payload.get("@adminapi.warnings")
        latest.warnings = [str(text)[:300] for text in warnings][:20] if isinstance(warnings, list) else []
        errors = payload.get("@adminapi.errors")
        latest.adminapi_errors = len(errors) if isinstance(errors, list) else 0


_ABSENT = object()


def run(settings: Settings, *, write_test_mailbox: str | None = None) -> DiagnoseReport:
    """Every probe, in order; a failed probe is a failed assumption, never an exception."""
    report = DiagnoseReport(
        tenant_id=settings.tenant_id,
        endpoint=settings.exchange_url,
        started_at=datetime.now(UTC),
        tool_version=__version__,
    )
    tokens = token_provider_for(settings)
    try:
        token = tokens.get_token()
    except TokenError as exc:
        report.error = f"no token could be obtained: {exc}"
        report.finished_at = datetime.now(UTC)
        return report
    report.token_claims = judge.token_claims(token)
    del token  # claims only from here on
    report.assumptions.append(
        judge.judge_endpoint(settings.exchange_url, settings.cloud.name, settings.cloud.exchange_url)
    )
    report.assumptions += judge.judge_token(
        report.token_claims, audience=_resource(settings), tenant_id=settings.tenant_id
    )
    recorder = Recorder()
    session = exchange_client.new_session()  # looked up at call time: the tests mount the emulator's transport
    session.hooks["response"].append(recorder.on_response)
    client = ExchangeClient(
        settings.exchange_url,
        settings.tenant_id,
        tokens,
        session=session,
        page_size=PAGE_SIZE,
        policy=RetryPolicy(
            deadline_seconds=settings.operation_deadline_seconds, backoff_base_seconds=settings.retry_backoff_seconds
        ),
        run_deadline=time.monotonic() + min(DIAGNOSE_SECONDS, settings.run_deadline_seconds),
        on_payload=recorder.on_payload,
    )
    try:
        report.assumptions += _reads(client)
        report.assumptions += [
            _paging(
                client,
                recorder,
                "Get-Mailbox",
                {"ResultSize": "Unlimited", "RecipientTypeDetails": ["UserMailbox", "SharedMailbox"]},
                ("ExternalDirectoryObjectId", "UserPrincipalName"),
                "ExternalDirectoryObjectId",
            ),
            _paging(
                client,
                recorder,
                "Get-MailboxAuditBypassAssociation",
                {"ResultSize": "Unlimited"},
                BYPASS_FIELDS,
                "Guid",
            ),
        ]
        report.assumptions.append(_empty_answer(client))
        report.assumptions.append(_filter_forms(client))
        if write_test_mailbox:
            report.assumptions.append(_write_test(client, write_test_mailbox))
        else:
            report.assumptions.append(
                Assumption(
                    "write.shapes",
                    "Set-Mailbox write shapes are accepted",
                    Verdict.SKIPPED,
                    "not tested: pass --write-test-mailbox UPN",
                )
            )
        report.assumptions.append(judge.judge_redirects(recorder.observations))
        report.assumptions += judge.summarise_answers(recorder.observations)
    finally:
        client.close()
    report.observations = recorder.observations
    report.finished_at = datetime.now(UTC)
    return report


def _resource(settings: Settings) -> str:
    """The audience a token for the configured endpoint carries (the scope without `/.default`)."""
    return settings.token_scope.removesuffix("/.default")


def _timed(call: Callable[[], Any]) -> tuple[Any, str | None, float]:
    started = time.monotonic()
    try:
        return call(), None, (time.monotonic() - started) * 1000
    except ExchangeError as exc:
        return None, str(exc), (time.monotonic() - started) * 1000


def _reads(client: ExchangeClient) -> list[Assumption]:
    """Each read cmdlet once, with the fields the controls select."""
    reads: list[tuple[str, dict[str, Any], tuple[str, ...], bool, str | None]] = [
        ("Get-OrganizationConfig", {}, ORG_CONFIG_FIELDS, True, "AuditDisabled"),
        ("Get-AdminAuditLogConfig", {}, ADMIN_AUDIT_LOG_FIELDS, True, "UnifiedAuditLogIngestionEnabled"),
    ]
    results = []
    for cmdlet, parameters, select, singleton, required in reads:
        answer, error, elapsed = _timed(functools.partial(client.invoke, cmdlet, parameters, select=select))
        if cmdlet == "Get-OrganizationConfig" and answer is not None and len(answer.rows) == 1:
            results.append(judge.judge_dehydrated(answer.rows[0].get("IsDehydrated")))
        results.append(
            judge.judge_read(
                cmdlet,
                rows=answer.rows if answer is not None else None,
                error=error,
                singleton=singleton,
                required=required,
                elapsed_ms=elapsed,
            )
        )
    return results


def _paging(
    client: ExchangeClient,
    recorder: Recorder,
    cmdlet: str,
    parameters: dict[str, Any],
    select: tuple[str, ...],
    key: str,
) -> Assumption:
    """The first pages of a list cmdlet at PAGE_SIZE rows each."""
    start = len(recorder.observations)
    pages: list[list[str]] = []
    complete, error = False, None
    try:
        iterator = client.pages(cmdlet, parameters, select=select)
        for page in iterator:
            pages.append([str(row.get(key) or row.get("Identity") or "") for row in page.rows])
            if page.errors:  # non-terminating errors next to the rows: the read is incomplete
                error = f"page {page.number} carried @adminapi.errors: {'; '.join(page.errors[:3])}"
                break
            if len(pages) >= MAX_PAGES:
                break
        else:
            complete = True
    except ExchangeError as exc:
        error = str(exc)
    anchors = [obs.anchor for obs in recorder.observations[start:] if obs.cmdlet == cmdlet and obs.status == 200]
    return judge.judge_paging(cmdlet, pages=pages, anchors=anchors, page_size=PAGE_SIZE, complete=complete, error=error)


def _empty_answer(client: ExchangeClient) -> Assumption:
    """A read that matches nothing: the body shape is recorded by the payload hook; zero rows must be readable."""
    answer, error, _elapsed = _timed(
        lambda: client.invoke("Get-Mailbox", {"Filter": NOBODY_FILTER}, select=("UserPrincipalName",))
    )
    title = "An answer without rows is read as zero rows"
    if error is not None:
        return Assumption(
            "answers.empty",
            title,
            Verdict.FAILED,
            f"failed: {error}",
            "Report this answer: the client may not read empty answers from this tenant.",
        )
    rows = len(answer.rows)
    return Assumption(
        "answers.empty",
        title,
        Verdict.HELD if rows == 0 else Verdict.FAILED,
        f"{rows} rows for a filter that matches nothing",
    )


def _count(client: ExchangeClient, filter_text: str) -> tuple[int | None, str | None]:
    answer, error, _elapsed = _timed(
        lambda: client.invoke(
            "Get-Mailbox", {"Filter": filter_text, "ResultSize": FILTER_SAMPLE}, select=("ExternalDirectoryObjectId",)
        )
    )
    return (len(answer.rows) if answer is not None else None), error


def _filter_forms(client: ExchangeClient) -> Assumption:
    quoted, quoted_error = _count(client, QUOTED_FILTER)
    dollar, dollar_error = _count(client, DOLLAR_FILTER)
    return judge.judge_filter_forms(quoted=quoted, quoted_error=quoted_error, dollar=dollar, dollar_error=dollar_error)


def _write_test(client: ExchangeClient, mailbox: str) -> Assumption:
    """On one mailbox: add an action it already audits and set the age limit it already has, then read back.

    The Add goes to a logon type the mailbox has already customised (not in DefaultAuditSet): writing a managed
    one would freeze it, which is a change. With none customised, only the age limit is written, and it says so.
    """

    def read() -> dict[str, Any]:
        rows = client.invoke("Get-Mailbox", {"Identity": mailbox}, select=TEST_MAILBOX_FIELDS).rows
        if len(rows) != 1:
            raise ExchangeError(f"expected one mailbox named {mailbox}, got {len(rows)}", cmdlet="Get-Mailbox")
        return {name: rows[0].get(name) for name in TEST_MAILBOX_FIELDS}

    before, error, _elapsed = _timed(read)
    if before is None:
        return judge.judge_write_test(mailbox=mailbox, before=None, after=None, added=None, error=error)
    managed = {str(kind).lower() for kind in before.get("DefaultAuditSet") or []}
    parameters: dict[str, Any] = {
        "Identity": before.get("Guid") or before.get("ExternalDirectoryObjectId") or mailbox,
        "AuditLogAgeLimit": before.get("AuditLogAgeLimit"),
    }
    added = None
    for logon in ("Owner", "Delegate", "Admin"):
        actions = sorted(str(action) for action in before.get(f"Audit{logon}") or [])
        if logon.lower() not in managed and actions:
            parameters[f"Audit{logon}"] = {"@odata.type": HASHTABLE, "Add": [actions[0]]}
            added = f"Audit{logon} {actions[0]}"
            break
    _written, error, _elapsed = _timed(lambda: client.invoke("Set-Mailbox", parameters))
    if error is not None:
        return judge.judge_write_test(mailbox=mailbox, before=before, after=None, added=added, error=error)
    after, error, _elapsed = _timed(read)
    return judge.judge_write_test(mailbox=mailbox, before=before, after=after, added=added, error=error)
