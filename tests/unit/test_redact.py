"""The log redactor masks bearer tokens, JWTs and registered secrets, in messages and tracebacks."""

import logging

from shared.redact import RedactingFilter, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl"


def test_jwt_and_bearer_are_masked():
    assert JWT not in redact(f"sent {JWT}")
    assert "abc.def" not in redact("Authorization: Bearer abc.def")


def test_registered_secret_is_masked_in_messages_and_tracebacks(caplog):
    logger = logging.getLogger("test.redact")
    handler_filter = RedactingFilter(["canary-secret-1234"])
    record = logger.makeRecord("test.redact", logging.ERROR, __file__, 1, "value %s", ("canary-secret-1234",), None)
    handler_filter.filter(record)
    assert "canary-secret-1234" not in record.getMessage()
    try:
        raise ValueError("boom canary-secret-1234")
    except ValueError:
        import sys

        record = logger.makeRecord("test.redact", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    handler_filter.filter(record)
    assert "canary-secret-1234" not in (record.exc_text or "")
    assert "boom" in record.exc_text
