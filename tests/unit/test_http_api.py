"""Remediation endpoint rules: caller identity, role checks, body validation. Pure: no Functions host needed."""

import base64
import json

import pytest

from shared.config.settings import AppSettings
from shared.runtime.http_api import (
    REMEDIATE_ROLE,
    ROLE_CLAIM_URI,
    HttpProblem,
    authorise,
    parse_request,
    read_principal,
)

EASY_AUTH = AppSettings(auth_enabled=True)


def principal(*claims, role_typ=None):
    document = {"auth_typ": "aad", "name_typ": "name", "claims": [{"typ": t, "val": v} for t, v in claims]}
    if role_typ:
        document["role_typ"] = role_typ
    return base64.b64encode(json.dumps(document).encode()).decode()


def headers(encoded, **extra):
    return {
        "x-ms-client-principal": encoded,
        "x-ms-client-principal-id": "oid-1",
        "x-ms-client-principal-name": "alice@contoso.com",
        **extra,
    }


@pytest.mark.parametrize("claim_type", ["roles", ROLE_CLAIM_URI])
def test_both_role_claim_forms_are_accepted(claim_type):
    caller = authorise(headers(principal((claim_type, REMEDIATE_ROLE), role_typ=ROLE_CLAIM_URI)), EASY_AUTH)
    assert caller.label == "alice@contoso.com (oid-1)"


def test_custom_role_type_from_the_principal_is_honoured():
    encoded = principal(("custom/role", REMEDIATE_ROLE), role_typ="custom/role")
    assert REMEDIATE_ROLE in read_principal(headers(encoded)).roles


def test_missing_principal_is_401():
    with pytest.raises(HttpProblem) as problem:
        authorise({}, EASY_AUTH)
    assert problem.value.status == 401


@pytest.mark.parametrize("roles", [[], [("roles", "MailboxAudit.Read")], [("groups", REMEDIATE_ROLE)]])
def test_wrong_or_missing_role_is_403(roles):
    with pytest.raises(HttpProblem) as problem:
        authorise(headers(principal(*roles)), EASY_AUTH)
    assert problem.value.status == 403


@pytest.mark.parametrize(
    "garbage",
    [
        "not base64!!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[1,2]").decode(),
        base64.b64encode(b'{"claims": 5}').decode(),
        "A" * 20000,
    ],
)
def test_garbage_principal_is_401_not_a_crash(garbage):
    with pytest.raises(HttpProblem) as problem:
        authorise({"x-ms-client-principal": garbage}, EASY_AUTH)
    assert problem.value.status == 401


def test_principal_headers_are_not_trusted_without_app_service_authentication():
    forged = headers(principal(("roles", REMEDIATE_ROLE)))
    with pytest.raises(HttpProblem) as problem:
        authorise(forged, AppSettings(auth_enabled=False))
    assert problem.value.status == 403 and "App Service authentication" in problem.value.message


def test_key_only_mode_accepts_the_key_alone_and_records_it():
    assert authorise({}, AppSettings(allow_key_only=True)).label == "function-key"


@pytest.mark.parametrize(
    ("body", "controls", "dry_run"),
    [
        (b"", (), True),  # a bare POST is a dry run of the default controls (service.execute)
        (b"{}", (), True),
        (b'{"dryRun": true}', (), True),
        (b'{"controls": ["org-audit-enabled"], "dryRun": false}', ("org-audit-enabled",), False),
    ],
)
def test_valid_bodies(body, controls, dry_run):
    request = parse_request(body)
    assert (request.controls, request.dry_run) == (controls, dry_run)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "body"),
        (b'{"dryRun": "yes"}', "dryRun"),
        (b'{"controls": "org-audit-enabled"}', "controls"),
        (b'{"controls": ["no-such-control"]}', "controls"),
        (b'{"controls": []}', "controls"),
        (b'{"control_id": "org-audit-enabled"}', "control_id"),
        (b"[" * 5000 + b"]" * 5000, "JSON"),
    ],
)
def test_invalid_bodies_are_400_with_a_clear_message(body, fragment):
    with pytest.raises(HttpProblem) as problem:
        parse_request(body)
    assert problem.value.status == 400
    assert fragment in problem.value.message


def test_oversized_body_is_413():
    with pytest.raises(HttpProblem) as problem:
        parse_request(b"{" + b" " * (64 * 1024) + b"}")
    assert problem.value.status == 413
