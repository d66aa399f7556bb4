"""Settings validation: every bad variable is named, secrets are never echoed, http only for loopback."""

import pytest

from shared.config.settings import ConfigError, Settings

TENANT = "0b5c1c1e-1111-2222-3333-444455556666"
CLIENT = "11111111-2222-3333-4444-555555555555"


def settings(**env):
    return Settings.from_env({"EXO_TENANT_ID": TENANT, **env})


def test_defaults_are_managed_identity_on_the_global_cloud():
    s = settings()
    assert s.auth_mode == "managed_identity"
    assert s.exchange_url == "https://outlook.office365.com"
    assert s.token_scope == "https://outlook.office365.com/.default"
    assert s.authority == "https://login.microsoftonline.com"


@pytest.mark.parametrize(
    ("cloud", "host", "authority"),
    [
        ("gcchigh", "outlook.office365.us", "https://login.microsoftonline.us"),
        ("dod", "outlook-dod.office365.us", "https://login.microsoftonline.us"),
        ("china", "partner.outlook.cn", "https://login.chinacloudapi.cn"),
    ],
)
def test_each_cloud_has_its_own_host_scope_and_authority(cloud, host, authority):
    s = settings(EXO_CLOUD=cloud)
    assert s.exchange_url == f"https://{host}"
    assert s.token_scope == f"https://{host}/.default"
    assert s.authority == authority


def test_endpoint_override_keeps_the_clouds_token_scope():
    s = settings(EXO_ENDPOINT="http://127.0.0.1:8443/")
    assert s.exchange_url == "http://127.0.0.1:8443"
    assert s.token_scope == "https://outlook.office365.com/.default"


@pytest.mark.parametrize(
    "url",
    [
        "http://outlook.office365.com",
        "http://10.0.0.5:80",
        "ftp://127.0.0.1",
        "https://host/path",
        "https://user:pw@host",
        "not a url",
        "https://h:99999",
        "https://outlook.\u043effice365.com",
    ],
)  # a Cyrillic o: a look-alike host
def test_bad_endpoints_are_refused_by_name(url):
    with pytest.raises(ConfigError) as raised:
        settings(EXO_ENDPOINT=url)
    assert "EXO_ENDPOINT" in raised.value.problems


def test_plain_http_is_fine_for_loopback_names():
    assert settings(EXO_ENDPOINT="http://localhost:1234").exchange_url == "http://localhost:1234"
    assert settings(EXO_ENDPOINT="http://[::1]:1234").exchange_url == "http://[::1]:1234"


def test_authority_must_be_https_even_on_loopback():
    with pytest.raises(ConfigError) as raised:
        settings(EXO_AUTHORITY="http://127.0.0.1:1")
    assert "EXO_AUTHORITY" in raised.value.problems


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"EXO_AUTH_MODE": "secret", "EXO_CLOUD": "mars"})
    assert set(raised.value.problems) == {"EXO_TENANT_ID", "EXO_CLIENT_ID", "EXO_CLIENT_SECRET", "EXO_CLOUD"}


def test_secret_values_never_appear_in_the_error():
    with pytest.raises(ConfigError) as raised:
        settings(EXO_AUTH_MODE="secret", EXO_CLIENT_ID="not-a-guid", EXO_CLIENT_SECRET="s3cr3t-canary-value")
    assert "s3cr3t-canary-value" not in str(raised.value)
    assert "EXO_CLIENT_ID" in str(raised.value)


def test_certificate_mode_needs_a_readable_file(tmp_path):
    with pytest.raises(ConfigError) as raised:
        settings(EXO_AUTH_MODE="certificate", EXO_CLIENT_ID=CLIENT, EXO_CERTIFICATE_PATH=str(tmp_path / "nope.pem"))
    assert raised.value.problems == {"EXO_CERTIFICATE_PATH": "file not found or not readable"}


def test_tenant_and_client_ids_are_normalised_to_lower_case():
    s = settings(EXO_TENANT_ID=TENANT.upper(), EXO_CLIENT_ID=CLIENT.upper())
    assert (s.tenant_id, s.client_id) == (TENANT, CLIENT)


def test_secret_is_hidden_from_repr():
    s = settings(EXO_AUTH_MODE="secret", EXO_CLIENT_ID=CLIENT, EXO_CLIENT_SECRET="s3cr3t-canary-value")
    assert "s3cr3t-canary-value" not in repr(s)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EXO_OPERATION_DEADLINE_SECONDS", "0"),
        ("EXO_OPERATION_DEADLINE_SECONDS", "ten"),
        ("EXO_RETRY_BACKOFF_SECONDS", "nan"),
        ("EXO_RETRY_BACKOFF_SECONDS", "1000"),
    ],
)
def test_timing_settings_are_bounded(name, value):
    with pytest.raises(ConfigError) as raised:
        settings(**{name: value})
    assert name in raised.value.problems


def test_the_verify_window_defaults_to_two_minutes_and_is_bounded():
    from shared.config.loader import load

    base = {"EXO_TENANT_ID": TENANT}
    assert load(base).policy.verify_seconds == 120
    assert load({**base, "REMEDIATION_VERIFY_SECONDS": "0"}).policy.verify_seconds == 0
    assert load({**base, "REMEDIATION_VERIFY_SECONDS": "900"}).policy.verify_seconds == 900
    for bad in ("-1", "901", "two minutes"):
        with pytest.raises(ConfigError) as raised:
            load({**base, "REMEDIATION_VERIFY_SECONDS": bad})
        assert "REMEDIATION_VERIFY_SECONDS" in raised.value.problems
