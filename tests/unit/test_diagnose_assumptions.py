"""diagnose's judgements, as pure functions of what it observed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from shared.diagnose.assumptions import (
    DiagnoseReport,
    Observation,
    Verdict,
    judge_paging,
    judge_redirects,
    judge_token,
    judge_write_test,
    render_text,
    summarise_answers,
    token_claims,
)

TENANT = "0b5c1c1e-1111-2222-3333-444455556666"
AUDIENCE = "https://outlook.office365.com"


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_claims_are_decoded_without_the_signature_and_only_the_shown_ones_are_kept():
    claims = token_claims(jwt({"aud": AUDIENCE, "roles": ["Exchange.ManageAsApp"], "secret_ish": "x", "tid": TENANT}))
    assert claims == {"aud": AUDIENCE, "roles": ["Exchange.ManageAsApp"], "tid": TENANT}
    assert token_claims("not-a-jwt") == {} and token_claims("a.!!!.c") == {}


def test_a_good_app_token_holds_all_three_token_assumptions():
    claims = {"aud": AUDIENCE + "/", "tid": TENANT.upper(), "roles": ["Exchange.ManageAsApp"]}
    assert {a.id: a.verdict for a in judge_token(claims, audience=AUDIENCE, tenant_id=TENANT)} == {
        "token.audience": Verdict.HELD,
        "token.tenant": Verdict.HELD,
        "token.app-only": Verdict.HELD,
    }


def test_the_exchange_app_id_is_an_accepted_audience_but_another_resource_is_not():
    ok = judge_token(
        {"aud": "00000002-0000-0ff1-ce00-000000000000", "tid": TENANT, "roles": []}, audience=AUDIENCE, tenant_id=TENANT
    )
    assert ok[0].verdict is Verdict.HELD
    wrong = judge_token(
        {"aud": "https://graph.microsoft.com", "tid": TENANT, "roles": ["Exchange.ManageAsApp"]},
        audience=AUDIENCE,
        tenant_id=TENANT,
    )
    assert wrong[0].verdict is Verdict.FAILED


def test_a_delegated_token_or_a_missing_role_fails_app_only():
    delegated = judge_token(
        {"aud": AUDIENCE, "tid": TENANT, "roles": ["Exchange.ManageAsApp"], "scp": "x"},
        audience=AUDIENCE,
        tenant_id=TENANT,
    )
    assert delegated[2].verdict is Verdict.FAILED and "delegated" in delegated[2].observed
    assert (
        judge_token({"aud": AUDIENCE, "tid": TENANT}, audience=AUDIENCE, tenant_id=TENANT)[2].verdict is Verdict.FAILED
    )


def paging(**overrides: object) -> Verdict:
    arguments: dict[str, object] = {
        "pages": [["a", "b"], ["c", "d"]],
        "anchors": ["APP:x", "APP:x"],
        "page_size": 2,
        "complete": True,
        "error": None,
    } | overrides
    return judge_paging("Get-Mailbox", **arguments).verdict  # type: ignore[arg-type]


def test_paging_holds_only_with_distinct_rows_one_anchor_and_more_than_one_page():
    assert paging() is Verdict.HELD
    assert paging(pages=[["a", "b"], ["b", "c"]]) is Verdict.FAILED  # overlap
    assert paging(anchors=["APP:x", "APP:y"]) is Verdict.FAILED
    assert paging(anchors=["APP:x", None]) is Verdict.FAILED
    assert paging(error="400 Expired or Invalid pagination request") is Verdict.FAILED
    assert paging(pages=[["a"]], anchors=["APP:x"]) is Verdict.INFO  # too few objects to prove it
    assert paging(pages=[["a", "b"]], anchors=["APP:x"], complete=False) is Verdict.FAILED  # a page and no end


MAILBOX = {
    "AuditOwner": ["MailboxLogin"],
    "AuditAdmin": [],
    "AuditDelegate": [],
    "AuditLogAgeLimit": "90.00:00:00",
    "DefaultAuditSet": ["Admin", "Delegate"],
}


def test_the_write_test_holds_only_when_nothing_changed():
    held = judge_write_test(
        mailbox="m", before=MAILBOX, after=dict(MAILBOX), added="AuditOwner MailboxLogin", error=None
    )
    assert held.verdict is Verdict.HELD
    frozen = judge_write_test(
        mailbox="m",
        before={**MAILBOX, "DefaultAuditSet": ["Admin", "Delegate", "Owner"]},
        after=MAILBOX,
        added=None,
        error=None,
    )
    assert frozen.verdict is Verdict.FAILED and "DefaultAuditSet" in frozen.advice
    lost = judge_write_test(mailbox="m", before=MAILBOX, after={**MAILBOX, "AuditOwner": []}, added="x", error=None)
    assert lost.verdict is Verdict.FAILED and "AuditOwner" in lost.observed


def observation(**fields: object) -> Observation:
    base: dict[str, object] = {
        "cmdlet": "Get-Mailbox",
        "status": 200,
        "elapsed_ms": 5.0,
        "host": "h:443",
        "anchor": "APP:x",
    } | fields
    return Observation(**base)  # type: ignore[arg-type]


def test_redirects_and_answer_shapes_are_recorded():
    assert judge_redirects([observation()]).verdict is Verdict.HELD
    moved = judge_redirects([observation(status=302, location_host="xyz01b.outlook.office365.com")])
    assert moved.verdict is Verdict.INFO and "xyz01b.outlook.office365.com" in moved.observed
    summary = {
        a.id: a
        for a in summarise_answers(
            [
                observation(body_shape="no value key"),
                observation(
                    body_shape="value: list of 2", next_link=True, warnings=["There are more results available..."]
                ),
                observation(headers={"x-concurrencycount": "3"}),
            ]
        )
    }
    assert "Get-Mailbox: no value key" in summary["answers.empty-shapes"].observed
    assert "rode on 1 pages" in summary["answers.warnings"].observed
    assert summary["answers.headers"].details["headers"] == {"x-concurrencycount": ["3"]}


def test_exit_codes_and_text():
    report = DiagnoseReport(tenant_id=TENANT, endpoint=AUDIENCE, started_at=datetime.now(UTC), tool_version="t")
    report.assumptions = judge_token(
        {"aud": AUDIENCE, "tid": TENANT, "roles": ["Exchange.ManageAsApp"]}, audience=AUDIENCE, tenant_id=TENANT
    )
    assert report.exit_code == 0
    report.assumptions += judge_token({}, audience=AUDIENCE, tenant_id=TENANT)
    assert report.exit_code == 1 and "1 failed (token)" in render_text(report)
    report.error = "no token could be obtained"
    assert report.exit_code == 2 and "Could not run" in render_text(report)
