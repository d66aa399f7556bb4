"""POST /api/remediate under hostile input: the endpoint's logic fuzzed in-process, then the real function end to end.

What an administrator relies on: whatever arrives, the endpoint answers 2xx or 4xx (503 only while an app setting is
broken: AUDIT_MODE or a true/false flag), never a 500; remediation runs only for an authorised caller (App Service
authentication on and the MailboxAudit.Remediate role, or key-only mode) with a valid body; every refusal is JSON with
an `error`.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from shared.controls.registry import IMPLEMENTED_CONTROLS as ALL_CONTROLS
from shared.controls.registry import OPT_IN_CONTROLS
from shared.model import ControlResult, Outcome, RemediationResult, RunReport, Status
from shared.runtime.http_api import MAX_BODY_BYTES, REMEDIATE_ROLE, ROLE_CLAIM_URI, handle
from shared.runtime.http_api import REMEDIABLE as IMPLEMENTED_CONTROLS  # what a request may name
from tests.functions.harness import function_env
from tests.hardening.support import at_stack_depth, fuzz, nested
from tests.support.tenant import REPO, TENANT_ID, scenario, tenant_traffic

DEFAULT = ALL_CONTROLS  # none named: every control; the opt-in ones switched off here land in not_run

# ---- app settings, with what each value means (the oracle never re-parses a flag) ------------------------------
# README: a true/false setting is true for true/1/yes, false for false/0/no or unset, and anything else (a typo such
# as `ture`) is a configuration error naming it; so is an AUDIT_MODE other than report or remediate. The endpoint
# answers such a broken configuration with 503.

TRUTHY = ("true", "TRUE", " True ", "1", "yes")
FALSY = ("false", "FALSE", " 0 ", "", "no")
BROKEN_FLAGS = ("on", "enabled", "tru", "ture", "true\x00", "ｔｒｕｅ", "yes please", "$true", "1 -or 1")
GOOD_MODES = ("report", "remediate", " Remediate ", "REPORT", "")  # "" = unset: report
BAD_MODES = ("fix", "revert", "report\x00", "remediate;", "réport", "$true", "report' -or '1'='1", "x" * 5000)


@dataclass(frozen=True)
class AppFacts:
    env: dict[str, str]
    easy_auth: bool
    key_only: bool
    broken: tuple[str, ...] = ()  # the settings that are a configuration error

    @property
    def usable(self) -> bool:
        return not self.broken


@st.composite
def app_settings(draw: st.DrawFn, *, broken: bool = True) -> AppFacts:
    """App settings and what they mean. `broken`: also draw values that are configuration errors (NUL bytes
    included, which only in-process calls can carry: a process environment refuses them)."""
    env: dict[str, str] = {}
    facts = {"easy_auth": False, "key_only": False}
    errors: list[str] = []
    flags = (
        [(v, True) for v in TRUTHY] * 2
        + [(v, False) for v in FALSY] * 2
        + ([(v, None) for v in BROKEN_FLAGS] if broken else [])
    )
    for name, fact in (("WEBSITE_AUTH_ENABLED", "easy_auth"), ("REMEDIATION_ALLOW_KEY_ONLY", "key_only")):
        if draw(st.booleans()):
            env[name], truth = draw(st.sampled_from(flags))
            facts[fact] = bool(truth)
            if truth is None:
                errors.append(name)
    if draw(st.booleans()):
        modes = [(m, True) for m in GOOD_MODES] * 3 + ([(m, False) for m in BAD_MODES] if broken else [])
        env["AUDIT_MODE"], good = draw(st.sampled_from(modes))
        if not good:
            errors.append("AUDIT_MODE")
    return AppFacts(env, broken=tuple(errors), **facts)


# ---- the caller: X-MS-CLIENT-PRINCIPAL and friends ---------------------------------------------------------------
# kind: "absent" (no principal), "role" (well-formed, holds the role), "no-role" (well-formed, lacks it: 403),
# "refused" (anything else: forged, garbage, wrong shapes; must be 401 or 403, never a run).

NAMES = st.text(max_size=40) | st.sampled_from(["alice@contoso.com", "\u202emoc.osotnoc@eve", "ünïcødé", "a\x00b", ""])
EXTRA_CLAIMS = st.lists(
    st.fixed_dictionaries(
        {"typ": st.sampled_from(["name", "oid", "preferred_username", "appid", "groups", "scp", "wids"]), "val": NAMES}
    ),
    max_size=4,
)
WRONG_TYPES = ("groups", "role", "Roles", "ROLES", "roles ", "scp", "wids", "http://schemas.microsoft.com/claims/role")
LOOKALIKES = (
    "mailboxaudit.remediate",
    "MAILBOXAUDIT.REMEDIATE",
    "MailboxAudit.Remediate ",
    " MailboxAudit.Remediate",
    "MailboxAudit.Remediate\x00",
    "MailboxAudit.Read",
    "MailboxAudit.Remediate.All",
    "MailboxAudit",
    "MailboxAudit․Remediate",
    "ΜailboxAudit.Remediate",
)  # one-dot leader; a Greek capital Mu
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def encode(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


@st.composite
def principal_with_role(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed principal holding the role, in any of the forms App Service authentication produces."""
    form = draw(st.sampled_from(["roles", "uri", "uri-default", "custom"]))
    role_typ = {"roles": ROLE_CLAIM_URI, "uri": ROLE_CLAIM_URI, "uri-default": None, "custom": "urn:custom:role"}[form]
    claim_type = {"roles": "roles", "uri": ROLE_CLAIM_URI, "uri-default": ROLE_CLAIM_URI, "custom": role_typ}[form]
    claims = [*draw(EXTRA_CLAIMS), {"typ": claim_type, "val": REMEDIATE_ROLE}]
    document: dict[str, Any] = {"auth_typ": "aad", "claims": draw(st.permutations(claims))}
    if role_typ:
        document["role_typ"] = role_typ
    return document


@st.composite
def principal_without_role(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed, but the role is missing, mis-spelt, or under a claim type that does not carry roles."""
    how = draw(st.sampled_from(["none", "wrong-type", "lookalike", "custom-type-ignored"]))
    claims = draw(EXTRA_CLAIMS)
    document: dict[str, Any] = {"auth_typ": "aad", "role_typ": ROLE_CLAIM_URI}
    if how == "wrong-type":
        claims.append({"typ": draw(st.sampled_from(WRONG_TYPES)), "val": REMEDIATE_ROLE})
    elif how == "lookalike":
        claims.append(
            {"typ": draw(st.sampled_from(["roles", ROLE_CLAIM_URI])), "val": draw(st.sampled_from(LOOKALIKES))}
        )
    elif how == "custom-type-ignored":  # the principal names its own role type: the URI form no longer counts
        document["role_typ"] = "urn:custom:role"
        claims.append({"typ": ROLE_CLAIM_URI, "val": REMEDIATE_ROLE})
    document["claims"] = [
        c for c in claims if c.get("val") != REMEDIATE_ROLE or c["typ"] not in ("roles", document["role_typ"])
    ]
    return document


def _wrong_shapes() -> st.SearchStrategy[Any]:
    """Valid JSON in the header, but not the shape App Service authentication sends."""
    role = {"typ": "roles", "val": REMEDIATE_ROLE}
    return (
        st.sampled_from(
            [
                None,
                0,
                "roles",
                [role],
                {"claims": "roles"},
                {"claims": 5},
                {"claims": {"roles": REMEDIATE_ROLE}},
                {"claims": [["roles", REMEDIATE_ROLE]]},
                {"claims": [{"typ": "roles", "val": [REMEDIATE_ROLE]}]},
                {"claims": [{"typ": ["roles"], "val": REMEDIATE_ROLE}]},
                {"claims": [{"typ": "roles"}]},
                {"claims": [{"val": REMEDIATE_ROLE}]},
                {"claims": [role], "role_typ": ["roles"]},
                {"claims": [role], "role_typ": {"a": 1}},
                {"roles": [REMEDIATE_ROLE]},
                {"claims": None, "roles": REMEDIATE_ROLE},
                {"claims": [{"typ": "roles", "val": None}, {"typ": None, "val": REMEDIATE_ROLE}]},
            ]
        )
        | JSON_VALUES
        | st.dictionaries(st.sampled_from(["claims", "role_typ", "auth_typ"]), JSON_VALUES, max_size=3)
    )


def _padded_role_principal() -> str:
    """A genuine-looking principal with the role whose base64 ends in padding (so stripping it breaks it)."""
    for pad in range(3):
        value = encode({"auth_typ": "aad" + " " * pad, "claims": [{"typ": "roles", "val": REMEDIATE_ROLE}]})
        if value.endswith("="):
            return value
    raise AssertionError("unreachable: one of three lengths needs padding")


def _refused_headers() -> st.SearchStrategy[str]:
    valid = _padded_role_principal()
    return st.one_of(
        _wrong_shapes().map(encode),
        st.binary(max_size=300).map(lambda raw: base64.b64encode(raw).decode()),  # base64 of random bytes
        st.text(max_size=200),  # not base64 at all (any unicode, NUL bytes included)
        st.sampled_from(
            [
                valid.rstrip("="),  # padding stripped
                valid.replace("+", "-").replace("/", "_") + "-_",  # URL-safe alphabet
                valid[:20] + "\n" + valid[20:],  # a line break inside
                valid + "\x00",
                " " + valid,
                valid[:-4],  # NUL, whitespace, truncated
                encode({"claims": [{"typ": "roles", "val": REMEDIATE_ROLE}], "pad": "x" * 17000}),  # > 16 KiB
                "A" * 20000,
                "é" * 100,
            ]
        ),
        st.integers(1, 1500).map(lambda depth: base64.b64encode(b'{"claims":' + nested(depth) + b"}").decode()),
        st.integers(1, 1500).map(lambda depth: base64.b64encode(nested(depth, b"{}", kind="object")).decode()),
    )


@st.composite
def callers(draw: st.DrawFn) -> tuple[dict[str, str], str]:
    """Request headers (names in any case, as clients send them) and the kind of caller they make."""
    kind = draw(st.sampled_from(["absent", "role", "no-role", "refused"]))
    headers: dict[str, str] = {}
    if kind == "role":
        headers["X-MS-CLIENT-PRINCIPAL"] = encode(draw(principal_with_role()))
    elif kind == "no-role":
        headers["x-ms-client-principal"] = encode(draw(principal_without_role()))
    elif kind == "refused":
        headers[draw(st.sampled_from(["X-MS-CLIENT-PRINCIPAL", "x-ms-client-principal"]))] = draw(_refused_headers())
    # Forged companions: who the caller claims to be is only a label, never a permission.
    for name in draw(
        st.sets(
            st.sampled_from(
                [
                    "X-MS-CLIENT-PRINCIPAL-NAME",
                    "X-MS-CLIENT-PRINCIPAL-ID",
                    "X-MS-CLIENT-PRINCIPAL-IDP",
                    "X-MS-TOKEN-AAD-ID-TOKEN",
                    "Authorization",
                    "x-functions-key",
                    "X-Forwarded-For",
                ]
            )
        )
    ):
        headers[name] = draw(NAMES | st.just("x" * 20000) | st.just(REMEDIATE_ROLE))
    headers.update(
        draw(
            st.dictionaries(
                st.text(min_size=1, max_size=20).filter(lambda n: n.lower() != "x-ms-client-principal"),
                st.text(max_size=50),
                max_size=3,
            )
        )
    )
    return headers, kind


# ---- bodies ------------------------------------------------------------------------------------------------------

VALID_DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "controls": st.lists(st.sampled_from(IMPLEMENTED_CONTROLS), min_size=1, unique=True),
        "dryRun": st.booleans(),
    },
)
WRONG_VALUES = st.sampled_from([None, "true", "false", 1, 0, [], {}, "", 1e309, -0.0, ["org-audit-enabled"]])
BAD_CONTROLS = st.sampled_from(
    [
        [],
        "org-audit-enabled",
        ["ORG-AUDIT-ENABLED"],
        ["org-audit-enabled\x00"],
        ["org-audit-enabled "],
        ["org-audit-enabled", "org-audit-enabled"],
        ["ｏｒｇ-audit-enabled"],
        ["no-such-control"],
        [1],
        [None],
        [[]],
        ["org-audit-enabled", ["org-audit-enabled"]],
        ["*"],
        ["' -or 1"],
        {"0": "org-audit-enabled"},
        ["revert"],
    ]
)


def dumps(document: Any, style: int) -> bytes:
    """JSON as different clients write it: compact, pretty, ASCII-escaped or not."""
    if style == 0:
        return json.dumps(document, separators=(",", ":")).encode()
    if style == 1:
        return json.dumps(document, indent=4, ensure_ascii=False).encode()
    return ("\r\n  " + json.dumps(document, ensure_ascii=True) + " \n").encode()


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A valid body with one thing wrong: an unknown field, a wrong type, a bad control list."""
    document = dict(draw(VALID_DOCUMENTS))
    change = draw(st.sampled_from(["extra", "controls", "dryRun", "both"]))
    if change == "extra":
        document[
            draw(
                st.text(max_size=20)
                | st.sampled_from(["Controls", "dryrun", "control_id", "revert", "__proto__", "\u202edryRun"])
            )
        ] = draw(JSON_VALUES)
    if change in ("controls", "both"):
        document["controls"] = draw(BAD_CONTROLS | JSON_VALUES)
    if change in ("dryRun", "both"):
        document["dryRun"] = draw(WRONG_VALUES | JSON_VALUES)
    return dumps(document, draw(st.integers(0, 2)))


def deep(depth: int, shape: str) -> bytes:
    inner = nested(depth)
    return {
        "top": inner,
        "object": nested(depth, b"{}", kind="object"),
        "dryRun": b'{"dryRun":' + inner + b"}",
        "controls": b'{"controls":[' + inner + b"]}",
        "controls-twice": b'{"controls":[' + inner + b"," + inner + b"]}",
    }[shape]


DEEP_SHAPES = ("top", "object", "dryRun", "controls", "controls-twice")
NUMBERS = st.sampled_from(
    [b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity", b"-0", b"1E400", b"0.0e-99999"]
) | st.integers(1, 12000).map(lambda n: b"9" * n)  # past Python's 4300-digit limit for int()


def bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        VALID_DOCUMENTS.flatmap(lambda d: st.integers(0, 2).map(lambda style: dumps(d, style))),
        near_valid(),
        JSON_VALUES.map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=2048),
        st.sampled_from([b"", b" ", b"\r\n\t", b"\x0b\x0c", b"\x00", b"null", b"[]", b'""', b"{}", b"{", b"}"]),
        NUMBERS.map(lambda n: b'{"dryRun":' + n + b"}"),
        NUMBERS.map(lambda n: b'{"controls":[' + n + b"]}"),
        st.tuples(st.integers(1, 1200), st.sampled_from(DEEP_SHAPES)).map(lambda t: deep(*t)),
        st.text(max_size=200).map(lambda t: json.dumps({"dryRun": t}).encode()),  # unicode, NUL, RTL in values
        st.sampled_from(["utf-16", "utf-32", "utf-8-sig", "latin-1"]).map(
            lambda enc: '{"dryRun": true, "controls": ["org-audit-enabled"]}'.encode(enc, "replace")
        ),
        st.sampled_from(
            [
                b'{"dryRun":"\\ud800"}',
                b'{"\\u0000":1}',
                b'{"dryRun":true}\x00',
                b'{"dryRun":\x00true}',
                b'{"dryRun":true,"dryRun":"x"}',
                b'{"dryRun":"x","dryRun":true}',
                b"\xc0\xaf{}",
                b'{"controls":["org-audit-enabled"]}garbage',
                b"{}\n{}",
            ]
        ),
        # sizes around the 64 KiB limit: valid JSON padded with whitespace
        st.integers(-3, 3000).map(lambda extra: b'{"dryRun": true}'.ljust(MAX_BODY_BYTES + extra)),
        st.integers(1, 64).map(lambda kib: b'{"controls": ["' + b"x" * kib * 1024 + b'"]}'),
    )


def expected_request(body: bytes) -> int | tuple[tuple[str, ...], bool]:
    """What the endpoint must make of a body from an authorised caller: 413, 400, or (controls, dry run).

    Written from the README's contract (all fields optional, dryRun defaults to true; unknown fields, wrong types
    or bad JSON are 400; more than 64 KiB is 413), not from the implementation.
    """
    if len(body) > 64 * 1024:
        return 413
    if not body.strip():
        return (), True  # none named: the run's default set (DEFAULT here)
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return 400
    if not isinstance(document, dict) or not set(document) <= {"controls", "dryRun"}:
        return 400
    if "controls" not in document:
        dry_run = document.get("dryRun", True)
        return 400 if not isinstance(dry_run, bool) else ((), dry_run)
    controls = document["controls"]
    if not (
        isinstance(controls, list)
        and controls
        and all(isinstance(c, str) for c in controls)
        and set(controls) <= set(IMPLEMENTED_CONTROLS)
        and len(set(controls)) == len(controls)
    ):
        return 400
    dry_run = document.get("dryRun", True)
    if not isinstance(dry_run, bool):
        return 400
    return tuple(controls), dry_run


OTHER_METHODS = st.sampled_from(
    [
        "post",
        "Post",
        "GET",
        "PUT",
        "PATCH",
        "DELETE",
        "HEAD",
        "OPTIONS",
        "TRACE",
        "CONNECT",
        "",
        " POST",
        "POST ",
        "P0ST",
        "POST\x00",
        "POSTPOST",
    ]
) | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=10)
METHODS = st.integers(0, 3).flatmap(lambda i: OTHER_METHODS if i == 0 else st.just("POST"))  # POST 3 times in 4


# ---- the endpoint's logic, in-process ----------------------------------------------------------------------------


@dataclass
class RecordingRun:
    """Stands in for the remediation itself: records who got through, does nothing."""

    calls: list[tuple[Any, Any]] = field(default_factory=list)

    def __call__(self, request: Any, caller: Any) -> RunReport:
        self.calls.append((request, caller))
        before = ControlResult(
            "org-audit-enabled", Status.NON_COMPLIANT, "AuditDisabled = False", "AuditDisabled = True", "stub"
        )
        step = RemediationResult("org-audit-enabled", "stub", Outcome.DRY_RUN, before, None, "stub")
        return RunReport(command="remediate", tenant_id=TENANT_ID, remediation=[step])


def call(method: str, headers: dict[str, str], body: bytes, env: dict[str, str]) -> tuple[int, Any, dict, RecordingRun]:
    """One request as the Functions worker hands it over (its case-insensitive header mapping), plus the recorder."""
    run = RecordingRun()
    request = func.HttpRequest(method=method or "GET", url="/api/remediate", headers=headers, body=body)
    status, document, answer_headers = handle(method, request.headers, body, env, run)
    return status, document, answer_headers, run


def assert_well_formed_answer(status: int, document: Any, answer_headers: dict) -> None:
    assert 200 <= status < 300 or 400 <= status < 500 or status == 503, status
    json.dumps(document)  # the function serialises it: anything unserialisable would be a 500
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in answer_headers.items())
    if status >= 400:
        assert isinstance(document.get("error"), str) and document["error"].strip(), document


def authorised(app: AppFacts, kind: str) -> bool:
    return app.key_only or (app.easy_auth and kind == "role")


@pytest.mark.slow
@fuzz(400)
@given(method=METHODS, app=app_settings(), caller=callers(), body=bodies())
def test_any_request_gets_a_clean_answer_and_only_authorised_valid_requests_run(method, app, caller, body):
    headers, kind = caller
    status, document, answer_headers, run = call(method, headers, body, app.env)
    assert_well_formed_answer(status, document, answer_headers)
    is_post = method.upper() == "POST"
    want = expected_request(body)
    event(f"status {status}")

    if run.calls:  # who got through must have been allowed to
        [(request, who)] = run.calls
        assert is_post and app.usable and authorised(app, kind), (kind, app)
        assert want == (request.controls, request.dry_run)
        assert who.via == ("function-key" if app.key_only else "easyauth")
        assert status == 200
    elif not is_post:
        assert status == 405 and answer_headers.get("Allow") == "POST"
    elif not app.usable:  # a broken app setting: the service is unusable, and says which setting is to blame
        assert status == 503 and all(name in document["error"] for name in app.broken)
    elif not authorised(app, kind):
        # Refused before the body is even read: an anonymous caller learns nothing about it (not even 413).
        assert status in (401, 403)
        if kind == "absent" and app.easy_auth:
            assert status == 401 and answer_headers.get("WWW-Authenticate") == "Bearer"
        if kind == "absent" and not app.easy_auth:
            assert status == 403 and "App Service authentication" in document["error"]
    elif not (app.key_only and app.easy_auth and kind == "refused" and status == 401):
        # Authorised, yet nothing ran: only a bad body may cause that (or, excluded above, a garbage principal next
        # to Easy Auth in key-only mode, which is refused first with 401).
        assert status == want, (status, want, kind)


@pytest.mark.slow
@fuzz(300)
@given(body=bodies())
def test_every_body_from_an_authorised_caller_is_run_exactly_as_asked_or_refused_with_400_or_413(body):
    headers = {"X-MS-CLIENT-PRINCIPAL": encode({"claims": [{"typ": "roles", "val": REMEDIATE_ROLE}]})}
    status, document, answer_headers, run = call("POST", headers, body, {"WEBSITE_AUTH_ENABLED": "true"})
    assert_well_formed_answer(status, document, answer_headers)
    want = expected_request(body)
    event(f"status {status}")
    if isinstance(want, int):
        assert (status, run.calls) == (want, [])
    else:
        [(request, _)] = run.calls
        assert (status, (request.controls, request.dry_run)) == (200, want)


@pytest.mark.slow
@fuzz(200)
@given(caller=callers())
def test_only_a_principal_with_the_role_gets_through_app_service_authentication(caller):
    headers, kind = caller
    status, document, answer_headers, run = call("POST", headers, b'{"dryRun": true}', {"WEBSITE_AUTH_ENABLED": "1"})
    assert_well_formed_answer(status, document, answer_headers)
    event(f"{kind} -> {status}")
    expected = {"role": {200}, "no-role": {403}, "absent": {401}, "refused": {401, 403}}[kind]
    assert status in expected, (kind, status, document)
    assert bool(run.calls) == (kind == "role")


@pytest.mark.slow
@pytest.mark.parametrize("shape", [*DEEP_SHAPES, "principal", "principal-object"])
@pytest.mark.parametrize("caller_frames", [0, 300])
def test_nesting_at_every_depth_is_refused_cleanly_however_deep_the_callers_stack(shape, caller_frames):
    """Every nesting depth from 1 to 1100, called from shallow and deep stacks (the worker's threads are deeper than
    a test's): Python's recursion limit sits somewhere in this range, and each layer that recurses (the JSON
    decoder, jsonschema's comparisons and repr) has its own crash band. Found: 500s for bodies nested ~250 deep and
    principal headers nested ~990 deep."""
    env = {"WEBSITE_AUTH_ENABLED": "true"}
    role = {"x-ms-client-principal": encode({"claims": [{"typ": "roles", "val": REMEDIATE_ROLE}]})}
    for depth in range(1, 1101):
        if shape.startswith("principal"):
            inner = (
                nested(depth, b"{}", kind="object")
                if shape == "principal-object"
                else b'{"claims":' + nested(depth) + b"}"
            )
            headers, body = {"x-ms-client-principal": base64.b64encode(inner).decode()}, b"{}"
        else:
            headers, body = role, deep(depth, shape)
        run = RecordingRun()
        status, document, _ = at_stack_depth(caller_frames, handle, "POST", headers, body, env, run)
        assert status in ((401, 403) if shape.startswith("principal") else (400,)), (depth, status, document)
        assert run.calls == []


# ---- the real function, end to end against the emulator ------------------------------------------------------------

NON_COMPLIANT_ORG = {"AuditDisabled": True}


class FunctionProcess:
    """The real `function_app.remediate`, many requests in one child process, one at a time (tests/hardening/
    http_driver.py). Stderr goes to a file, so a chatty run can never block on a full pipe."""

    def __init__(self, emu: Any) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in close(), after the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.hardening.http_driver"],
            cwd=REPO,
            env=function_env(emu, telemetry=False),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def send(self, method: str, headers: dict[str, str], body: bytes, env: dict[str, str]) -> dict[str, Any]:
        request = {"method": method, "headers": headers, "body": base64.b64encode(body).decode(), "env": env}
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the function process died: {self.stderr()[-3000:]}"
        return json.loads(line)

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def close(self) -> None:
        assert self.process.stdin
        try:
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def live():
    from emulator import Emulator

    with Emulator(
        scenario(
            organization_config=NON_COMPLIANT_ORG, admin_audit_log_config={"UnifiedAuditLogIngestionEnabled": False}
        )
    ) as emu:
        function = FunctionProcess(emu)
        try:
            yield emu, function
            assert "Traceback" not in function.stderr(), function.stderr()[-3000:]
        finally:
            function.close()


BAD_SMALL_BODIES = st.one_of(  # the hostile families, kept cheap to ship to the child process
    near_valid(),
    st.binary(max_size=256),
    st.tuples(st.integers(200, 1100), st.sampled_from(DEEP_SHAPES)).map(lambda t: deep(*t)),
    NUMBERS.map(lambda n: b'{"dryRun":' + n + b"}"),
    st.just(b'{"dryRun": false}'.ljust(MAX_BODY_BYTES + 1)),
)


ROLE_HEADERS = principal_with_role().map(lambda document: {"X-MS-CLIENT-PRINCIPAL": encode(document)})
EASY_AUTH = AppFacts({"WEBSITE_AUTH_ENABLED": "true"}, easy_auth=True, key_only=False)
KEY_ONLY = AppFacts({"REMEDIATION_ALLOW_KEY_ONLY": "true"}, easy_auth=False, key_only=True)
VALID_BODIES = VALID_DOCUMENTS.map(lambda d: json.dumps(d).encode())
WRITING_BODIES = st.lists(st.sampled_from(IMPLEMENTED_CONTROLS), unique=True).map(  # always a real fix of the org
    lambda more: json.dumps(
        {"controls": ["org-audit-enabled", *(c for c in more if c != "org-audit-enabled")], "dryRun": False}
    ).encode()
)
ANY_BODY = BAD_SMALL_BODIES | VALID_BODIES


def hostile_requests(category: str) -> st.SearchStrategy[tuple[str, AppFacts, dict[str, str], str, bytes]]:
    """(method, app settings, headers, caller kind, body) of one category of request."""
    if category == "anonymous-or-forged":  # Easy Auth on, no principal or one without the role, any body
        return st.tuples(st.just("POST"), st.just(EASY_AUTH), callers().filter(lambda c: c[1] != "role"), ANY_BODY).map(
            lambda t: (t[0], t[1], t[2][0], t[2][1], t[3])
        )
    if category == "forged-without-easy-auth":  # principal headers sent by the client itself: never trusted
        return st.tuples(
            st.just("POST"),
            app_settings(broken=False).filter(lambda a: not a.easy_auth and not a.key_only),
            callers(),
            ANY_BODY,
        ).map(lambda t: (t[0], t[1], t[2][0], t[2][1], t[3]))
    if category == "wrong-method":
        return st.tuples(
            st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "get"]),
            st.just(EASY_AUTH),
            ROLE_HEADERS,
            st.just("role"),
            VALID_BODIES,
        )
    if category == "authorised-bad-body":
        return st.tuples(
            st.just("POST"),
            st.just(EASY_AUTH),
            ROLE_HEADERS,
            st.just("role"),
            BAD_SMALL_BODIES.filter(lambda b: isinstance(expected_request(b), int)),
        )
    if category == "authorised":
        return st.tuples(
            st.just("POST"), st.just(EASY_AUTH), ROLE_HEADERS, st.just("role"), VALID_BODIES | WRITING_BODIES
        )
    assert category == "key-only"
    return st.tuples(st.just("POST"), st.just(KEY_ONLY), st.just({}), st.just("absent"), VALID_BODIES | WRITING_BODIES)


CATEGORIES = (
    "anonymous-or-forged",
    "forged-without-easy-auth",
    "wrong-method",
    "authorised-bad-body",
    "authorised",
    "key-only",
)


@pytest.mark.e2e
@pytest.mark.parametrize("category", CATEGORIES)
@fuzz(9, shrink=False)
@given(data=st.data())
def test_the_real_function_answers_hostile_requests_cleanly_and_never_writes_for_an_unauthorised_caller(
    live, category, data
):
    """54 requests (9 per category) through function_app.remediate against the emulated tenant."""
    method, app, headers, kind, body = data.draw(hostile_requests(category))
    emu, function = live
    with emu.lock:  # every request meets a tenant that needs fixing, so a write would have something to do
        emu.tenant.organization_config.update(NON_COMPLIANT_ORG)
        emu.tenant.admin_audit_log_config["UnifiedAuditLogIngestionEnabled"] = False
    traffic_before, writes_before = len(tenant_traffic(emu)), len(emu.writes())

    answer = function.send(method, headers, body, app.env)

    assert 200 <= answer["status"] < 300 or 400 <= answer["status"] < 500, answer
    assert answer["mimetype"] == "application/json"
    document = json.loads(answer["body"])
    want = expected_request(body)
    allowed = method == "POST" and authorised(app, kind) and not isinstance(want, int)
    # Key-only mode next to Easy Auth still refuses a principal header it cannot read (the platform never sends one).
    garbage_principal = app.key_only and app.easy_auth and kind == "refused" and answer["status"] == 401
    event(f"status {answer['status']}")
    if not allowed or garbage_principal:
        assert answer["status"] >= 400 and document["error"]
        assert len(tenant_traffic(emu)) == traffic_before, "a refused request reached the tenant or its token endpoint"
        assert len(emu.writes()) == writes_before
        assert emu.tenant.organization_config["AuditDisabled"] is True
    else:
        controls, dry_run = want
        controls = controls or DEFAULT
        assert answer["status"] == 200 and document["dry_run"] == dry_run, answer
        # Opt-in controls (off in this app's settings) are not run: listed under not_run, without a result.
        run = [cid for cid in controls if cid not in OPT_IN_CONTROLS]
        assert [step["control_id"] for step in document["controls"]] == run
        assert [item["id"] for item in document["not_run"]] == [cid for cid in controls if cid in OPT_IN_CONTROLS]
        wrote = len(emu.writes()) > writes_before
        event("wrote" if wrote else "wrote nothing")
        # The oracle is not vacuous: an authorised, non-dry run that includes an org-level switch does write.
        assert wrote == (not dry_run and bool({"org-audit-enabled", "audit-log-search"} & set(controls)))
