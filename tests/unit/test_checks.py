"""Pure verdict rules for org-audit-enabled: fail closed on anything that is not a clean boolean."""

import pytest

from shared.controls.org_audit_enabled import evaluate_org_audit
from shared.controls.org_config import OrgConfig
from shared.controls.reading import MISSING
from shared.model import Status


def org(audit_disabled, dehydrated=False):
    return OrgConfig(name="contoso.onmicrosoft.com", audit_disabled=audit_disabled, is_dehydrated=dehydrated)


def test_audit_on_is_compliant_and_says_the_ual_is_a_separate_switch():
    result = evaluate_org_audit(org(False))
    assert result.status is Status.COMPLIANT
    assert result.actual == "AuditDisabled = False"
    assert "audit-log-search" in result.message


def test_audit_off_is_non_compliant_with_the_fix():
    result = evaluate_org_audit(org(True))
    assert result.status is Status.NON_COMPLIANT
    assert "Set-OrganizationConfig -AuditDisabled $false" in result.message


@pytest.mark.parametrize("value", ["false", "False", 0, None, [], {"x": 1}])
def test_anything_but_a_boolean_is_an_error_never_compliant(value):
    assert evaluate_org_audit(org(value)).status is Status.ERROR


def test_missing_property_is_an_error():
    result = evaluate_org_audit(org(MISSING))
    assert result.status is Status.ERROR
    assert result.actual == "missing"
