"""The settings declaration and loader: one parse per run, every bad value named, docs generated from it."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from shared.config.declaration import BY_NAME, SETTINGS, Env
from shared.config.loader import RunSettings, load, try_load
from shared.config.settings import AppSettings, AuditPolicy, ConfigError, Settings

REPO = Path(__file__).resolve().parents[2]
TENANT = "0b5c1c1e-1111-2222-3333-444455556666"
CLIENT = "11111111-2222-3333-4444-555555555555"
CANARY = "s3cr3t-canary-value-0123"
PARSED = [s for s in SETTINGS if s.parsed and s.group != "tools"]


def full_env(**extra: str) -> dict[str, str]:
    """Every setting the loader parses, set to a valid value (secret mode, so the secret is in play)."""
    return {
        "EXO_TENANT_ID": TENANT,
        "EXO_AUTH_MODE": "secret",
        "EXO_CLIENT_ID": CLIENT,
        "EXO_CLIENT_SECRET": CANARY,
        "EXO_CERTIFICATE_PASSWORD": CANARY,
        "EXO_CERTIFICATE_PATH": __file__,
        "TELEMETRY_PSEUDONYM_KEY": CANARY,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={CANARY}",
        "AzureWebJobsStorage": f"AccountName=st;AccountKey={CANARY}",
        **extra,
    }


def load_script() -> object:
    spec = importlib.util.spec_from_file_location("settings_docs", REPO / "scripts" / "settings_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the loader ----------------------------------------------------------------------------------------------------


def test_one_load_gives_every_group_with_the_documented_defaults():
    config = load({"EXO_TENANT_ID": TENANT})
    assert isinstance(config, RunSettings)
    assert config.exchange == Settings.from_env({"EXO_TENANT_ID": TENANT})
    assert config.app == AppSettings() and config.policy == AuditPolicy()
    assert (
        config.telemetry.connection_string,
        config.telemetry.worker_exports,
        config.telemetry.include_identities,
        config.telemetry.pseudonym_key,
    ) == (None, False, False, None)
    assert (config.storage.configured, config.storage.container) == (False, "evidence")


def test_the_run_object_is_frozen():
    config = load({"EXO_TENANT_ID": TENANT})
    with pytest.raises(AttributeError):
        config.app = AppSettings(audit_mode="remediate")  # type: ignore[misc]


def test_every_problem_of_every_group_is_reported_at_once_by_name():
    env = {
        "EXO_CLOUD": "mars",
        "AUDIT_MODE": "fix-everything",
        "TELEMETRY_INCLUDE_IDENTITIES": "ture",
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "maybe",
        "MAILBOX_AUDIT_BASELINE": "nist",
        "AzureWebJobsStorage__accountName": "Not_An_Account",
        "EVIDENCE_CONTAINER": "Evidence",
    }
    with pytest.raises(ConfigError) as raised:
        load(env)
    assert set(raised.value.problems) == {"EXO_TENANT_ID", *env}


@pytest.mark.parametrize("setting", [s for s in PARSED if s.kind == "flag"], ids=lambda s: s.name)
def test_a_typo_in_any_flag_is_refused_never_a_silent_false(setting):
    with pytest.raises(ConfigError) as raised:
        load({"EXO_TENANT_ID": TENANT, setting.name: "ture"})
    assert raised.value.problems == {setting.name: "must be true or false"}
    assert load({"EXO_TENANT_ID": TENANT, setting.name: " YES "}) is not None


@pytest.mark.parametrize("setting", [s for s in PARSED if s.kind == "choice"], ids=lambda s: s.name)
def test_every_choice_accepts_its_declared_values_and_refuses_others(setting):
    for choice in setting.choices:
        env = full_env(**{setting.name: choice.upper()})
        if setting.name.startswith("AzureWebJobsStorage__"):  # only read for identity-based storage
            env = {**env, "AzureWebJobsStorage": "", "AzureWebJobsStorage__accountName": "stmag01"}
        load(env)
    env = {"EXO_TENANT_ID": TENANT, setting.name: "none-of-these", "AzureWebJobsStorage__accountName": "stmag01"}
    with pytest.raises(ConfigError) as raised:
        load(env)
    assert set(raised.value.problems) == {setting.name}


@pytest.mark.parametrize("setting", [s for s in PARSED if s.kind == "number"], ids=lambda s: s.name)
@pytest.mark.parametrize("value", ["nan", "-1", "ten", "1e308"])
def test_every_number_is_bounded(setting, value):
    with pytest.raises(ConfigError) as raised:
        load({"EXO_TENANT_ID": TENANT, setting.name: value})
    assert set(raised.value.problems) == {setting.name}


def test_secret_values_never_appear_in_an_error_or_a_repr():
    config = load(full_env())
    assert CANARY not in repr(config)
    bad = {name: f"{CANARY}' -or $true" for name in ("EXO_TENANT_ID", "AUDIT_MODE", "AzureWebJobsStorage")}
    error = try_load(full_env(**bad))
    assert isinstance(error, ConfigError) and set(error.problems) == set(bad)
    assert CANARY not in str(error)


def test_the_old_entry_points_read_only_their_own_group():
    """Settings/AuditPolicy/AppSettings.from_env stay as they were: a bad value elsewhere is not their business."""
    env = {"EXO_TENANT_ID": TENANT, "AUDIT_MODE": "nope", "EVIDENCE_CONTAINER": "X"}
    assert Settings.from_env(env).tenant_id == TENANT
    assert AuditPolicy.from_env(env) == AuditPolicy()
    with pytest.raises(ConfigError) as raised:
        AppSettings.from_env(env)
    assert set(raised.value.problems) == {"AUDIT_MODE"}


def test_connection_settings_parsed_by_the_caller_are_not_parsed_again():
    exchange = Settings.from_env({"EXO_TENANT_ID": TENANT})
    assert load({}, exchange=exchange).exchange is exchange


def test_an_undeclared_or_foreign_name_cannot_be_read():
    with pytest.raises(KeyError, match="not a declared setting"):
        Env({"EXO_TYPO": "x"}).raw("EXO_TYPO")
    with pytest.raises(KeyError):
        Env({}).raw("AUDIT_SCHEDULE")  # the host's: this code must never act on it


# ---- the declaration and the code ----------------------------------------------------------------------------------

ENV_READ = re.compile(r"""(?:env|environ)\s*(?:\.get\(|\[)\s*f?["']([A-Za-z_][A-Za-z0-9_{}]*)""")
OUTSIDE_CONFIG_READERS: set[str] = set()  # grant-permissions, too, reads EXO_CLOUD and GRAPH_ENDPOINT via the loader


def test_environment_variables_are_read_in_the_config_package_only():
    readers = set()
    for path in [*REPO.joinpath("shared").rglob("*.py"), REPO / "function_app.py"]:
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith("shared/config/"):
            continue
        for name in ENV_READ.findall(path.read_text(encoding="utf-8")):
            assert name in BY_NAME, f"{relative} reads {name}, which is not declared"
            readers.add(relative)
    assert readers <= OUTSIDE_CONFIG_READERS, f"read the environment outside shared/config: {readers}"


def test_every_declaration_is_complete():
    for setting in SETTINGS:
        assert setting.meaning and not setting.meaning.endswith("."), setting.name
        assert (setting.kind == "choice") == bool(setting.choices), setting.name
        if setting.secret:
            assert not setting.example or setting.example.startswith(("<", "UseDevelopmentStorage")), setting.name


# ---- the generated documentation -----------------------------------------------------------------------------------


def test_readme_telemetry_doc_and_local_settings_are_generated_from_the_declaration():
    script = load_script()
    stale = [
        str(path.relative_to(REPO))
        for path, text in script.rendered().items()  # type: ignore[attr-defined]
        if path.read_text(encoding="utf-8") != text
    ]
    assert stale == [], f"out of date: {stale}; run python scripts/settings_docs.py"


def test_local_settings_hold_every_local_setting_and_nothing_undeclared():
    values = json.loads((REPO / "local.settings.example.json").read_text(encoding="utf-8"))["Values"]
    assert set(values) == {s.name for s in SETTINGS if s.example is not None}
    local_env = {name: value for name, value in values.items() if not value.startswith("<")}
    loaded = try_load({**local_env, "EXO_CLIENT_ID": CLIENT, "EXO_CLIENT_SECRET": "x"})
    assert isinstance(loaded, RunSettings), f"the example itself is refused: {loaded}"


def test_readme_lists_every_declared_setting_once():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \|", readme, flags=re.MULTILINE)
    assert sorted(rows) == sorted(BY_NAME)
