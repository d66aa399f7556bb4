"""The error envelope parser and classifier: every shape Exchange is known to answer with."""

import json

import pytest

from shared.exchange import errors as e


def envelope(text, code="BadRequest", error_id="Ex6F9304", dotnet="Microsoft.Exchange.Some.Exception"):
    return json.dumps(
        {
            "error": {
                "code": code,
                "message": "Error executing cmdlet",
                "details": [{"code": "Context", "target": "", "message": f"{error_id}|{dotnet}|{text}"}],
            }
        }
    ).encode()


def test_details_message_is_split_into_id_type_and_text():
    info = e.parse_error_body(envelope("The operation couldn't be performed", dotnet="X.NotFoundException"))
    assert (info.error_id, info.exception_type, info.text) == (
        "Ex6F9304",
        "X.NotFoundException",
        "The operation couldn't be performed",
    )


def test_internal_exception_is_the_fallback():
    body = json.dumps(
        {
            "error": {
                "code": "x",
                "message": "Error executing cmdlet",
                "innererror": {"internalexception": {"message": "real", "type": "T"}},
            }
        }
    ).encode()
    info = e.parse_error_body(body)
    assert (info.text, info.exception_type) == ("real", "T")


@pytest.mark.parametrize(
    "body", [b"\x00" * 16, b"", b"<html><body>Bad gateway</body></html>", b'{"error": "x"}', b"[1, 2]", b'{"trunc']
)
def test_bodies_that_are_not_the_envelope_parse_to_nothing(body):
    assert e.parse_error_body(body) == e.ErrorInfo()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, b"", e.ExchangeAuthError),
        (403, b"\x00" * 16, e.ExchangePermissionError),
        (404, envelope("couldn't be found", code="NotFound"), e.ExchangeNotFound),
        (400, envelope("Cannot bind parameter"), e.ExchangeBadRequest),
        (
            400,
            envelope("Cmdlet needs proxy. Current Server FQDN : a", dotnet="X.CmdletProxyNotAvailableException"),
            e.ExchangeProxyRequired,
        ),
        (
            400,
            envelope(
                "first run Enable-OrganizationCustomization", dotnet="X.InvalidOperationInDehydratedContextException"
            ),
            e.TenantDehydrated,
        ),
        (400, envelope("Expired or Invalid pagination request. Default Expiry time is 00:30:00"), e.PaginationExpired),
        (
            400,
            envelope("Auditing of MailItemsAccessed event is only available for users with appropriate license"),
            e.ExchangeLicenceError,
        ),
        (429, b"", e.ExchangeThrottled),
        (
            500,
            envelope("You have reached the maximum number of concurrent requests per tenant. Please wait"),
            e.ExchangeThrottled,
        ),
        (503, b"<html/>", e.ExchangeServerError),
    ],
)
def test_classification(status, body, expected):
    error = e.classify_error(status, e.parse_error_body(body), cmdlet="Get-Mailbox", request_id="r1", retry_after=None)
    assert type(error) is expected
    assert "Get-Mailbox" in str(error) and "r1" in str(error)


def test_permission_error_tells_the_administrator_which_roles_to_assign():
    error = e.classify_error(403, e.ErrorInfo(), cmdlet="Get-Mailbox", request_id=None, retry_after=None)
    assert "Exchange Administrator" in str(error) and "Global Reader" in str(error)


def test_auth_error_names_the_missing_permission():
    error = e.classify_error(401, e.ErrorInfo(), cmdlet="Get-Mailbox", request_id=None, retry_after=None)
    assert "Exchange.ManageAsApp" in str(error)
