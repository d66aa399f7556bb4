"""Settings and the written-exception register with hostile content.

What an administrator relies on: a wrong EXO_*, MAILBOX_* or AUDIT_* setting is refused by its name, with exit code
2, no traceback and nothing sent to Exchange; a value that is accepted is one the tool can use safely; and nothing
in the exception register (OPATH operators, quotes, wildcards) reaches a filter sent to Exchange or excuses an
account it does not name exactly.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from shared.config.clouds import CLOUDS
from shared.config.exception_register import ExceptionFileError, parse_register
from shared.config.settings import AUTH_MODES, BASELINES, AppSettings, AuditPolicy, ConfigError, Settings
from shared.controls.mailbox_scan import NOT_EXPLICIT_FILTER
from tests.hardening.support import HOSTILE_TEXT, JSON_VALUES, fuzz
from tests.support.cli import clean_env, cli_json, run_cli
from tests.support.tenant import REPO, TENANT_ID, scenario, tenant_traffic

TODAY = date(2026, 11, 28)
CLIENT_ID = "3f1c2a4b-5d6e-4f70-8a9b-0c1d2e3f4a5b"
CERTIFICATE = str(Path(__file__))  # any existing file satisfies the settings check; the PEM is read later
GUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")


def base_env(auth_mode: str) -> dict[str, str]:
    """A complete, valid configuration for any auth mode, so a refusal can only come from the hostile value."""
    return {
        "EXO_TENANT_ID": TENANT_ID,
        "EXO_AUTH_MODE": auth_mode,
        "EXO_CLIENT_ID": CLIENT_ID,
        "EXO_CLIENT_SECRET": "a-valid-looking-secret",
        "EXO_CERTIFICATE_PATH": CERTIFICATE,
    }


def safe_url(url: str, *, loopback_http: bool) -> bool:
    parts = urlsplit(url)
    plain_http_ok = loopback_http and parts.hostname in ("127.0.0.1", "localhost", "::1")
    return (
        bool(parts.hostname)
        and (parts.scheme == "https" or (parts.scheme == "http" and plain_http_ok))
        and not (parts.query or parts.fragment or parts.username or parts.password)
        and parts.path in ("", "/")
    )


def within(low: float, high: float) -> Any:
    return lambda x: math.isfinite(x) and low <= x <= high


def truthy(value: str) -> bool:
    """The README's spelling of an enabled flag."""
    return value.strip().lower() in ("true", "1", "yes")


# Every EXO_*, MAILBOX_* and AUDIT_* setting the Python code reads: which loader reads it, and what an accepted
# value must look like. (AUDIT_SCHEDULE is read by the Functions host only; see the CLI cases below.)
SETTINGS: dict[str, tuple[Any, Any]] = {
    "EXO_TENANT_ID": (Settings.from_env, lambda s, v: GUID.fullmatch(s.tenant_id)),
    "EXO_ORGANIZATION": (
        Settings.from_env,
        lambda s, v: s.organization is None or re.fullmatch(r"(?:[A-Za-z0-9-]+\.)+[A-Za-z]+", s.organization),
    ),
    "EXO_AUTH_MODE": (Settings.from_env, lambda s, v: s.auth_mode in AUTH_MODES),
    "EXO_CLIENT_ID": (Settings.from_env, lambda s, v: s.client_id is None or GUID.fullmatch(s.client_id)),
    "EXO_CLIENT_SECRET": (
        Settings.from_env,
        lambda s, v: s.client_secret in (None, v.strip()) and (len(v.strip()) < 8 or v.strip() not in repr(s)),
    ),
    "EXO_CERTIFICATE_PATH": (
        Settings.from_env,
        lambda s, v: s.certificate_path is None or s.certificate_path.is_file(),
    ),
    "EXO_CERTIFICATE_PASSWORD": (Settings.from_env, lambda s, v: len(v.strip()) < 8 or v.strip() not in repr(s)),
    "EXO_CLOUD": (Settings.from_env, lambda s, v: s.cloud in CLOUDS.values()),
    "EXO_ENDPOINT": (Settings.from_env, lambda s, v: safe_url(s.exchange_url, loopback_http=True)),
    "EXO_AUTHORITY": (Settings.from_env, lambda s, v: safe_url(s.authority, loopback_http=False)),
    "EXO_OPERATION_DEADLINE_SECONDS": (Settings.from_env, lambda s, v: within(1, 900)(s.operation_deadline_seconds)),
    "EXO_RETRY_BACKOFF_SECONDS": (Settings.from_env, lambda s, v: within(0.01, 60)(s.retry_backoff_seconds)),
    "AUDIT_RUN_DEADLINE_SECONDS": (Settings.from_env, lambda s, v: within(5, 86400)(s.run_deadline_seconds)),
    "AUDIT_MODE": (AppSettings.from_env, lambda s, v: s.audit_mode in ("report", "remediate")),
    "AUDIT_EXCEPTIONS_FILE": (
        lambda env: AuditPolicy.from_env(env, TODAY),
        lambda p, v: not p.exceptions.valid and not v.strip(),
    ),
    "MAILBOX_AUDIT_BASELINE": (lambda env: AuditPolicy.from_env(env, TODAY), lambda p, v: p.baseline in BASELINES),
    "MAILBOX_AUDIT_MIN_RETENTION_DAYS": (
        lambda env: AuditPolicy.from_env(env, TODAY),
        lambda p, v: isinstance(p.min_retention_days, int) and 1 <= p.min_retention_days <= 3650,
    ),
    "MAILBOX_AUDIT_INCLUDE_SHARED": (
        lambda env: AuditPolicy.from_env(env, TODAY),
        lambda p, v: p.include_shared is truthy(v),
    ),
    "MAILBOX_AUDIT_CHECK_EXPLICIT_ENABLE": (
        lambda env: AuditPolicy.from_env(env, TODAY),
        lambda p, v: p.check_explicit_enable is truthy(v),
    ),
    "MAILBOX_REMEDIATION_WRITES_PER_SECOND": (
        lambda env: AuditPolicy.from_env(env, TODAY),
        lambda p, v: within(0.1, 50)(p.writes_per_second),
    ),
}

# A plausible value per setting, so hostile variations of it ("valid, plus an OPATH tail") are tried too.
PLAUSIBLE = {
    "EXO_TENANT_ID": TENANT_ID,
    "EXO_ORGANIZATION": "contoso.onmicrosoft.com",
    "EXO_AUTH_MODE": "secret",
    "EXO_CLIENT_ID": CLIENT_ID,
    "EXO_CLIENT_SECRET": "s3cr3t",
    "EXO_CERTIFICATE_PATH": CERTIFICATE,
    "EXO_CERTIFICATE_PASSWORD": "pw",
    "EXO_CLOUD": "gcchigh",
    "EXO_ENDPOINT": "https://outlook.office365.com",
    "EXO_AUTHORITY": "https://login.microsoftonline.com",
    "EXO_OPERATION_DEADLINE_SECONDS": "60",
    "EXO_RETRY_BACKOFF_SECONDS": "2",
    "AUDIT_RUN_DEADLINE_SECONDS": "1500",
    "AUDIT_MODE": "remediate",
    "AUDIT_EXCEPTIONS_FILE": "/etc/mailbox-audit/exceptions.json",
    "MAILBOX_AUDIT_BASELINE": "cis-v4",
    "MAILBOX_AUDIT_MIN_RETENTION_DAYS": "180",
    "MAILBOX_AUDIT_INCLUDE_SHARED": "true",
    "MAILBOX_AUDIT_CHECK_EXPLICIT_ENABLE": "false",
    "MAILBOX_REMEDIATION_WRITES_PER_SECOND": "2",
}
TAILS = (
    "' -or Name -like '*",
    " -or $true",
    "\n-or 1",
    "\x00",
    ";$(Get-Mailbox)",
    "}",
    "/../../x",
    "?x=1#f",
    "@evil.example",
    ":99999",
    " " * 3,
    "x" * 100_000,
)


def hostile_values(name: str) -> st.SearchStrategy[str]:
    plausible = PLAUSIBLE[name]
    return st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.text(max_size=60),  # any unicode: NUL, newlines, non-ASCII, RTL marks
        st.sampled_from(TAILS).map(lambda tail: plausible + tail),
        st.sampled_from(TAILS).map(lambda tail: tail + plausible),
        st.sampled_from(
            [plausible.upper(), f"  {plausible}  ", plausible * 2, plausible.replace("o", "\u043e")]
        ),  # a Cyrillic o
    )


NAMED_VALUES = st.sampled_from(sorted(SETTINGS)).flatmap(lambda name: st.tuples(st.just(name), hostile_values(name)))
LONG_PATH = "-----BEGIN PRIVATE KEY-----/" + "A" * 300  # a pasted PEM: longer than a file name may be


@pytest.mark.slow
@fuzz(400)
@given(setting=NAMED_VALUES, auth_mode=st.sampled_from(AUTH_MODES))
# Combinations too specific to rely on drawing them; each once broke (a traceback, or a hang):
@example(setting=("EXO_CERTIFICATE_PATH", LONG_PATH), auth_mode="certificate")
@example(setting=("EXO_CERTIFICATE_PATH", "x" * 100_000), auth_mode="certificate")
@example(setting=("AUDIT_EXCEPTIONS_FILE", "/dev/null"), auth_mode="secret")
@example(setting=("AUDIT_EXCEPTIONS_FILE", "a\x00b"), auth_mode="secret")
def test_a_hostile_setting_is_refused_by_its_own_name_or_accepted_as_a_safe_value(setting, auth_mode):
    name, value = setting
    load, is_safe = SETTINGS[name]
    try:
        loaded = load({**base_env(auth_mode), name: value})
    except ConfigError as error:
        event("refused")
        assert set(error.problems) == {name}, "only the variable with the hostile value is blamed"
        message = str(error)
        assert name in message and len(message) < 1000
        if len(value.strip()) >= 8:
            assert value.strip() not in message, "a refused value is never echoed (it may be a secret, or 100 kB)"
    else:
        event("accepted")
        assert is_safe(loaded, value), f"{name}={value[:80]!r} was accepted as {loaded!r}"[:500]


# ---- through the command line, as an administrator would meet it ---------------------------------------------------


@pytest.fixture(scope="module")
def emulator():
    from emulator import Emulator

    with Emulator(scenario()) as started:
        yield started


@pytest.fixture
def emu(emulator):
    """The module's emulated tenant, compliant and without mailboxes or bypass associations for each test."""
    with emulator.lock:
        emulator.tenant.mailboxes[:] = []
        emulator.tenant.bypass_associations[:] = []
    return emulator


def cli(emu: Any, *args: str, auth_mode: str = "secret", **env: str) -> Any:
    emu.reset_log()
    return run_cli(emu, *args, auth_mode=auth_mode, env=env, timeout=30)


PEM_PASTED = "-----BEGIN PRIVATE KEY-----\n" + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ/+" * 2000  # 100 kB

# (variable, hostile value, auth mode). NUL bytes are tried in-process only: a process environment cannot carry them
# (the OS refuses), and neither can an App Service app setting.
REFUSED = [
    ("EXO_TENANT_ID", f"{TENANT_ID}' -or Name -like '*", "secret"),
    ("EXO_TENANT_ID", "x" * 100_000, "secret"),
    ("EXO_ORGANIZATION", "contoso.onmicrosoft.com\n-or $true", "secret"),
    ("EXO_AUTH_MODE", "secret; $(Get-Mailbox)", "secret"),
    ("EXO_CLIENT_ID", "{}", "secret"),
    ("EXO_CLIENT_SECRET", "   ", "secret"),
    ("EXO_CERTIFICATE_PATH", PEM_PASTED, "certificate"),  # was a traceback (File name too long)
    ("EXO_CERTIFICATE_PATH", "/dev/null", "certificate"),
    ("EXO_CLOUD", "global' -or '1'='1", "secret"),
    ("EXO_ENDPOINT", "https://outlook.office365.com/adminapi?Filter=Name -like '*'", "secret"),
    ("EXO_ENDPOINT", "https://attacker.example@127.0.0.1", "secret"),
    ("EXO_AUTHORITY", "http://login.microsoftonline.com", "secret"),
    ("EXO_OPERATION_DEADLINE_SECONDS", "1e308", "secret"),
    ("EXO_RETRY_BACKOFF_SECONDS", "NaN", "secret"),
    ("AUDIT_RUN_DEADLINE_SECONDS", "9" * 100_000, "secret"),
    ("AUDIT_MODE", "remediate' -or $true", "secret"),
    ("AUDIT_EXCEPTIONS_FILE", "{}", "secret"),
    ("MAILBOX_AUDIT_BASELINE", "cis -or *", "secret"),
    ("MAILBOX_AUDIT_MIN_RETENTION_DAYS", "90.5", "secret"),
    ("MAILBOX_AUDIT_MIN_RETENTION_DAYS", "$true", "secret"),
    ("MAILBOX_AUDIT_INCLUDE_SHARED", "ｔｒｕｅ", "secret"),
    ("MAILBOX_AUDIT_CHECK_EXPLICIT_ENABLE", "true\n-or 1", "secret"),
    ("MAILBOX_REMEDIATION_WRITES_PER_SECOND", "-Infinity", "secret"),
]


def assert_refused_cleanly(result: Any, emu: Any, name: str, value: str) -> None:
    """Exit 2, the variable named, no traceback, not a single request to the tenant or its token endpoint."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert name in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert tenant_traffic(emu) == []
    if len(value.strip()) >= 8:
        assert value.strip() not in result.stderr + result.stdout


@pytest.mark.parametrize(("name", "value", "auth_mode"), REFUSED, ids=[f"{n}={v[:24]!r}" for n, v, _ in REFUSED])
def test_the_cli_refuses_a_hostile_setting_by_name_and_sends_nothing(emu, name, value, auth_mode):
    result = cli(emu, "check", "--json", auth_mode=auth_mode, **{name: value})
    assert_refused_cleanly(result, emu, name, value)
    assert cli_json(result)["status"] == "Error"


@pytest.mark.parametrize(
    ("name", "value", "auth_mode"),
    [
        ("EXO_CLIENT_SECRET", "x' -or Name -like '*-$(Get-Mailbox)-{}", "secret"),
        ("EXO_CERTIFICATE_PASSWORD", "$(Get-Mailbox)' -or '1'='1", "certificate"),
    ],
)
def test_a_hostile_secret_is_used_as_a_secret_and_never_shown(emu, name, value, auth_mode):
    """Any text can be a secret, so it is accepted; the token endpoint (or the PEM) then refuses it: exit 2, nothing
    sent to Exchange, and the value appears nowhere in the output."""
    result = cli(emu, "check", "--json", "-v", auth_mode=auth_mode, **{name: value})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert emu.invocations() == []
    assert value not in result.stdout + result.stderr


def test_the_schedule_is_the_hosts_business_and_ignored_by_the_cli(emu):
    result = cli(emu, "check", "--json", AUDIT_SCHEDULE="0 0 6 * * * ; rm -rf / ; $(Get-Mailbox)")
    assert result.returncode == 0 and "Traceback" not in result.stderr


# ---- the exception register file ---------------------------------------------------------------------------------

UNUSABLE_FILES = {
    "a number": b"42",
    "an object, not a list": b'{"control": "audit-bypass", "identity": "svc-backup"}',
    "a string": b'"[]"',
    "null": b"null",
    "a list of numbers": b"[1, 2]",
    "a list of lists": b"[[]]",
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "not UTF-8": b'[{"identity": "\xff\xfe"}]',
    "UTF-16": '[{"identity": "svc-backup"}]'.encode("utf-16"),
    "NUL bytes": b"[\x00]",
    "empty": b"",
    "truncated": b'[{"control": "audit-bypass", "identity": "svc',
    "over 1 MiB": b"[" + b" " * (1024 * 1024) + b"]",
}


@pytest.mark.parametrize("content", UNUSABLE_FILES.values(), ids=UNUSABLE_FILES.keys())
def test_an_unusable_register_file_is_a_configuration_error(emu, tmp_path, content):
    path = tmp_path / "exceptions.json"
    path.write_bytes(content)
    result = cli(emu, "check", "--json", AUDIT_EXCEPTIONS_FILE=str(path))
    assert_refused_cleanly(result, emu, "AUDIT_EXCEPTIONS_FILE", str(path))
    if len(content) > 1024 * 1024:
        assert "larger than" in result.stderr  # was reported as "not valid JSON": the real reason was hidden


def capped_memory() -> None:
    """In the child: 2 GiB of address space at most, so a regression that reads forever fails instead of eating the
    machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.e2e
def test_a_register_path_that_never_ends_or_blocks_is_refused_at_once(emu, tmp_path):
    """/dev/zero used to be read forever (and a FIFO blocks on open): the run hung until the function timed out."""
    fifo = tmp_path / "register.fifo"
    os.mkfifo(fifo)
    environment = {**clean_env(), **emu.env("secret")}
    environment.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    for path in ("/dev/zero", str(fifo), str(tmp_path), "/dev/stdin"):
        emu.reset_log()
        result = subprocess.run(
            [sys.executable, "-m", "shared", "check", "--json"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            preexec_fn=capped_memory,
            env={**environment, "AUDIT_EXCEPTIONS_FILE": path},
        )
        assert_refused_cleanly(result, emu, "AUDIT_EXCEPTIONS_FILE", path)


def test_reading_a_secret_file_as_the_register_does_not_reveal_it(emu):
    result = cli(emu, "check", "--json", AUDIT_EXCEPTIONS_FILE="/proc/self/environ")
    assert_refused_cleanly(result, emu, "AUDIT_EXCEPTIONS_FILE", "/proc/self/environ")
    assert emu.client_secret not in result.stdout + result.stderr


def entry(**fields: Any) -> dict[str, Any]:
    return {
        "control": "audit-bypass",
        "identity": "svc-backup",
        "reason": "vendor case 123",
        "approved_by": "CISO, change 4711",
        "expires": "2099-06-30",
        **fields,
    }


MALFORMED_ENTRIES = [
    entry(identity=["svc-backup"]),
    entry(identity={"name": "svc-backup"}),
    entry(identity=5),
    entry(identity=None),
    entry(control=["audit-bypass"]),
    entry(control="audit-bypass' -or '1'='1"),
    entry(reason="r" * 100_000),
    entry(approved_by=None),
    entry(approved_by={"$ne": None}),
    entry(expires=20990630),
    entry(expires="20990630"),
    entry(expires="2099-06-30T00:00:00"),
    entry(expires="9999-99-99"),
    entry(expires="2000-01-01"),
    {"identity": "svc-backup"},
    {},
]
NEVER_MATCHING = [
    entry(identity=text)
    for text in (
        "svc-backup\x00",
        "svc-backup' -or '1'='1",
        "*",
        "svc-*",
        "%",
        "$true",
        "{}",
        "$(Get-Mailbox)",
        "svc-backup -or $true",
    )
]


def test_wrongly_typed_register_entries_are_listed_as_rejected_and_never_excuse_anyone(emu, tmp_path):
    path = tmp_path / "exceptions.json"
    path.write_text(json.dumps(MALFORMED_ENTRIES + NEVER_MATCHING))
    with emu.lock:
        emu.tenant.bypass_associations[:] = [
            {
                "Name": "svc-backup",
                "Identity": "svc-backup",
                "Guid": "5e1c0b5a-0000-4000-8000-000000000001",
                "AuditBypassEnabled": True,
            }
        ]
    result = cli(emu, "check", "--json", "--control", "audit-bypass", AUDIT_EXCEPTIONS_FILE=str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [bypass] = cli_json(result)["controls"]
    assert bypass["status"] == "NonCompliant"
    assert [finding["identity"] for finding in bypass["details"]["findings"]] == ["svc-backup"]
    assert bypass["details"]["exceptions_used"] == []
    rejected = bypass["details"]["exceptions_rejected"]
    assert len(rejected) == len(MALFORMED_ENTRIES)
    assert all(len(value) <= 200 for item in rejected for value in item["entry"].values()), "bounded in reports"


# ---- injection: nothing from the register ever reaches a filter ---------------------------------------------------


def strings(value: Any) -> list[str]:
    """Every string inside a parameter value (lists and hashtables included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return []


INJECTION_IDENTITIES = [
    "*",
    "' -or Name -like '*",
    "svc-backup' -or Name -ne '",
    "$true",
    "{}",
    "$(Get-Mailbox)",
    "x' -or Name -like '*",
    "alice' -or '1'='1",
    "Name -eq 'alice'",
    'svc-backup"; $true; "',
]
LITERAL = "x' -or Name -like '*"  # an association really named like this is excused by its own entry, and only it


def test_opath_in_the_register_never_reaches_a_filter_and_never_excuses_another_account(emu, tmp_path):
    path = tmp_path / "exceptions.json"
    path.write_text(json.dumps([entry(identity=identity) for identity in INJECTION_IDENTITIES]))
    associations = [
        ("svc-backup", "5e1c0b5a-0000-4000-8000-000000000001"),
        ("alice", "5e1c0b5a-0000-4000-8000-000000000002"),
        (LITERAL, "5e1c0b5a-0000-4000-8000-000000000003"),
    ]
    with emu.lock:
        emu.tenant.bypass_associations[:] = [
            {"Name": name, "Identity": name, "Guid": guid, "AuditBypassEnabled": True} for name, guid in associations
        ]
    env = {"AUDIT_EXCEPTIONS_FILE": str(path), "MAILBOX_AUDIT_CHECK_EXPLICIT_ENABLE": "true"}

    check = cli(emu, "check", "--json", **env)
    sent = [request.body for request in emu.invocations()]
    fix = run_cli(emu, "remediate", "--json", "--control", "audit-bypass", env=env, timeout=30)
    sent += [request.body for request in emu.invocations()][len(sent) :]

    filters = [
        body["CmdletInput"]["Parameters"]["Filter"] for body in sent if "Filter" in body["CmdletInput"]["Parameters"]
    ]
    assert filters == [NOT_EXPLICIT_FILTER], "the only filter ever sent is the constant one"
    values = [
        text for body in sent for text in strings(body["CmdletInput"]["Parameters"]) if text != NOT_EXPLICIT_FILTER
    ]
    for identity in INJECTION_IDENTITIES:
        assert not [text for text in values if identity in text], f"{identity!r} reached a parameter"

    [bypass] = [c for c in cli_json(check)["controls"] if c["id"] == "audit-bypass"]
    assert bypass["status"] == "NonCompliant"
    assert sorted(f["identity"] for f in bypass["details"]["findings"]) == ["alice", "svc-backup"]
    assert [used["matched"] for used in bypass["details"]["exceptions_used"]] == [LITERAL]
    # The fix writes exactly the two unexcused associations, by GUID; the literally named one keeps its bypass.
    writes = [
        body["CmdletInput"]["Parameters"]
        for body in sent
        if body["CmdletInput"]["CmdletName"] == "Set-MailboxAuditBypassAssociation"
    ]
    assert sorted(w["Identity"] for w in writes) == [associations[0][1], associations[1][1]]
    assert fix.returncode == 0, fix.stderr[-2000:]
    assert {a["Name"]: a["AuditBypassEnabled"] for a in emu.tenant.bypass_associations} == {
        "svc-backup": False,
        "alice": False,
        LITERAL: True,
    }


# ---- the register's rules, fuzzed ---------------------------------------------------------------------------------

FIELD_VALUES = {
    "control": st.sampled_from(["AUDIT-BYPASS", "org-audit-enabled", " audit-bypass", "audit-bypass\x00", ""]),
    "identity": st.sampled_from(["", "   ", "x" * 1025]),
    "reason": st.sampled_from(["", "r" * 2000]) | st.text(max_size=30),
    "approved_by": st.sampled_from(["", " "]) | st.text(max_size=30),
    "expires": st.sampled_from(["2026-11-27", "20990630", "2099-6-30", "2099-02-30", "2099-06-30T00:00"])
    | st.dates().map(date.isoformat)
    | st.text(max_size=12),
}
IDENTITIES = st.sampled_from(["svc-backup", "Zoë", "\u202eevil", "*", "' -or '1'='1", "svc-*", "İstanbul"]) | st.text(
    min_size=1, max_size=30
)


@st.composite
def register_entries(draw: st.DrawFn) -> dict[str, Any]:
    """A valid entry with zero to two fields damaged (a wrong value, a wrong JSON type, or missing)."""
    item: dict[str, Any] = entry(identity=draw(IDENTITIES), expires=draw(st.sampled_from(["2099-06-30", "2026-11-28"])))
    for name in draw(st.sets(st.sampled_from(sorted(FIELD_VALUES)), max_size=2)):
        how = draw(st.sampled_from(["value", "type", "missing"]))
        if how == "missing":
            del item[name]
        else:
            item[name] = draw(FIELD_VALUES[name] if how == "value" else JSON_VALUES)
    return item


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int) -> st.SearchStrategy[Any]:
    return st.integers(1, odds).flatmap(lambda i: bad if i == 1 else good)


REGISTERS = mostly(st.lists(mostly(register_entries(), JSON_VALUES, odds=12), max_size=6), JSON_VALUES, odds=8)
TWISTS = (
    str.upper,
    str.lower,
    lambda t: f"  {t}\t",
    lambda t: t + "' -or '1'='1",
    lambda t: t + "*",
    lambda t: t[:-1],
    lambda t: "*",
    lambda t: t + "\x00",
    lambda t: t,
)


@pytest.mark.slow
@fuzz(300)
@given(document=REGISTERS, data=st.data())
def test_a_register_either_loads_or_is_refused_and_an_entry_excuses_only_its_own_identity(document, data):
    try:
        register = parse_register(document, TODAY)
    except ExceptionFileError:
        event("file refused")
        assert not (isinstance(document, list) and all(isinstance(item, dict) for item in document))
        return
    event(f"{len(register.valid)} valid, {len(register.rejected)} rejected")
    for (control, key), valid in register.valid.items():
        assert control == "audit-bypass" and key == valid.identity.lower()
        assert valid.expires >= TODAY and all(
            text.strip() for text in (valid.identity, valid.reason, valid.approved_by)
        )
    json.dumps(register.rejected)  # goes into reports and telemetry as it is
    names = [item["identity"] for item in document if isinstance(item.get("identity"), str)] or ["svc-backup"]
    query = data.draw(
        st.tuples(st.sampled_from(names), st.sampled_from(TWISTS)).map(lambda t: t[1](t[0])) | st.text(max_size=30),
        label="query",
    )
    found = register.find("audit-bypass", query)
    if found is not None:
        event("excused")
        assert found.identity.lower() == query.strip().lower(), "an entry excused a name it does not state"
    else:
        assert query.strip().lower() not in {key for _, key in register.valid}, "a valid entry failed to excuse"
