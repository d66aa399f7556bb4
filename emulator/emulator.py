"""Emulator: wires the tenant, the token service, the listeners and the request log together."""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .activity import ActivityApi, ActivityFeed
from .activity import operation_of as activity_operation
from .audit_search import AuditSearch
from .certs import TestPKI
from .compliance import ComplianceApi, compliance_settings
from .exchange import INVOKE_PATH, ExchangeApi, is_write
from .faults import Fault, FaultSet, FiredFault
from .graph import GraphApi, GraphState, operation_for
from .identity import IdentityApi, is_token_request
from .ingestion import IngestionApi
from .rbac import compliance_rbac
from .scenario import generated_guests, load_scenario
from .server import Dispatch, Listener
from .tenant import TenantState
from .tokens import AppCertificate, TokenIssuer
from .transport import EmulatorTransport
from .wire import RecordedRequest, Request, Response, json_response

if TYPE_CHECKING:
    import requests

log = logging.getLogger("emulator")

AUTH_MODES = ("managed_identity", "secret", "certificate", "federated_identity")
PLAIN_HTTP = frozenset({"msi", "ingestion"})  # the listeners served without TLS
# Where a request names its tenant: Exchange (and IPPS) InvokeCommand, the token endpoint and discovery, the feed.
TENANT_IN_PATH = re.compile(
    r"^/(?:adminapi/beta/|api/v1(?:\.0)?/)?(?P<tenant>[^/]+)/(?:InvokeCommand|oauth2/|v2\.0/|\.well-known/|"
    r"discovery/|activity/)",
    re.IGNORECASE,
)


@dataclass
class _Tenancy:
    """One tenant behind the emulator: its Exchange state, its audit feed, whether it consented to the app."""

    tenant: TenantState
    activity: ActivityFeed
    consented: bool = True


INSTRUMENTATION_KEY = "00000000-0000-0000-0000-000000000001"


class Emulator:
    """Exchange Online admin API + Entra ID + managed identity + App Insights ingestion on loopback sockets.

    `Emulator(scenario)` takes a scenario dict, a JSON file path, or None (a compliant, empty tenant).
    Use `start()`/`stop()` or `with Emulator(...) as emu:`. URLs, `ca_bundle` and `certificate_path` exist
    only while started.
    """

    def __init__(self, scenario: dict[str, Any] | str | os.PathLike[str] | None = None) -> None:
        self.scenario = load_scenario(scenario)
        # The real-service behaviours (emulator-spec.md "Quirks"); a test may flip one on the running emulator.
        self.quirks: dict[str, bool] = self.scenario["quirks"]
        self._served_hosts: dict[str, str] = {}  # extra host names the in-process transport answers (serve_host)
        self.lock = threading.RLock()  # guards self.tenant; hold it when changing tenant state from a test
        # Many tenants: `tenant`, `tenant_id`, `organization`, `activity` and `consented` are those of the tenant
        # the request being served names (its URL: /adminapi/beta/{t}/, /{t}/oauth2/, /api/v1.0/{t}/activity);
        # everywhere else (a test, the managed identity, Graph) the home tenant's, the scenario's own.
        self._bound = threading.local()
        self._home_tenant = TenantState(self.scenario)
        self._guest_specs: dict[str, dict[str, Any]] = {}
        for guest in self.scenario["tenants"] + generated_guests(
            self.scenario["generate_tenants"], self._home_tenant.tenant_id
        ):
            self._guest_specs[str(guest["tenant_id"]).lower()] = guest
            self._guest_specs[str(guest["organization"]).lower()] = guest
        self._guests: dict[str, _Tenancy] = {}
        self.client_id = str(uuid.uuid4())
        self.client_secret = secrets.token_urlsafe(32)
        self.managed_identity_client_id = str(uuid.uuid4())
        self.system_identity_client_id = str(uuid.uuid4())
        self.identity_header = secrets.token_urlsafe(24)
        self.app_object_id = str(uuid.uuid4())
        self.mi_object_ids = {
            self.managed_identity_client_id: str(uuid.uuid4()),
            self.system_identity_client_id: str(uuid.uuid4()),
        }
        self.issuer = TokenIssuer(self.tenant_id)
        # The app registration's federated identity credentials: managed identities (object ids) whose token for
        # api://AzureADTokenExchange the token endpoint accepts as the app's client assertion. A test may change it.
        self.federated_identities: set[str] = {self.mi_object_ids[self.managed_identity_client_id]}
        self.faults = FaultSet()
        for fault in self.scenario["faults"]:
            self.faults.add(fault)
        self._records_lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._telemetry: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._listeners: dict[str, Listener] = {}
        self._tmpdir: str | None = None
        self._pki: TestPKI | None = None
        self.app_certificate: AppCertificate | None = None
        self._exchange = ExchangeApi(self)
        self._identity = IdentityApi(self)
        self._ingestion = IngestionApi(self)
        # The Management Activity API's state (subscriptions, blobs, its clock); guarded by its own lock.
        self._home = _Tenancy(self._home_tenant, ActivityFeed(self.scenario, self.tenant_id, self.organization))
        self._activity = ActivityApi(self)
        self.graph = GraphState(
            self.tenant_id,
            self.tenant.principal,
            self.scenario["graph"],
            [
                {
                    "id": self.mi_object_ids[self.managed_identity_client_id],
                    "appId": self.managed_identity_client_id,
                    "displayName": "id-mailbox-audit-guard",
                    "servicePrincipalType": "ManagedIdentity",
                },
                {
                    "id": self.mi_object_ids[self.system_identity_client_id],
                    "appId": self.system_identity_client_id,
                    "displayName": "func-mailbox-audit-guard",
                    "servicePrincipalType": "ManagedIdentity",
                },
                {
                    "id": self.app_object_id,
                    "appId": self.client_id,
                    "displayName": "Mailbox Audit Guard",
                    "servicePrincipalType": "Application",
                },
            ],
        )  # Microsoft Graph's directory objects; guarded by self.lock like self.tenant
        self._graph = GraphApi(self)
        # Exchange RBAC: the scenario's `app_roles` shortcut makes the own identities members of a role group.
        self.tenant.rbac.seed(
            [
                (self.managed_identity_client_id, self.managed_identity_principal_id, "id-mailbox-audit-guard"),
                (
                    self.system_identity_client_id,
                    self.mi_object_ids[self.system_identity_client_id],
                    "func-mailbox-audit-guard",
                ),
                (self.client_id, self.app_object_id, "Mailbox Audit Guard"),
            ]
        )
        # The administrators who may sign in delegated (grant-permissions): a password and an object id each.
        self.admins = {a["upn"]: a for a in self.scenario["exchange_rbac"]["admins"]}
        self.admin_passwords = {upn: secrets.token_urlsafe(24) for upn in self.admins}
        self.admin_object_ids = {upn: str(uuid.uuid4()) for upn in self.admins}
        self.audit_search = AuditSearch(self)  # the audit log query API's queries; its own lock
        # Security & Compliance (emulator/compliance.py): audit retention policies and the licence; under self.lock.
        self.compliance: dict[str, Any] = compliance_settings(self.scenario["compliance"])
        # Its own Exchange-style RBAC for apps (pointers, role groups with Purview roles), also under self.lock.
        self.compliance_rbac = compliance_rbac(self.compliance["rbac"])
        self._compliance = ComplianceApi(self)

    # ---- tenants ---------------------------------------------------------------------------------------------

    @property
    def tenant(self) -> TenantState:
        bound = self._current()
        return bound.tenant if bound else self._home_tenant

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    @property
    def organization(self) -> str:
        return self.tenant.organization

    @property
    def activity(self) -> ActivityFeed:
        bound = self._current()
        return bound.activity if bound else self._home.activity

    @property
    def consented(self) -> bool:
        """Whether the tenant's administrator consented to the app (its service principal exists there)."""
        bound = self._current()
        return bound.consented if bound else True

    @property
    def guest_tenant_ids(self) -> list[str]:
        """The other tenants behind this Exchange, Entra ID and feed, in scenario order."""
        return list(dict.fromkeys(str(spec["tenant_id"]).lower() for spec in self._guest_specs.values()))

    def guest(self, tenant_id: str) -> _Tenancy:
        """Another tenant's state (its TenantState, feed and consent), made on first use; KeyError if unknown."""
        found = self._tenancy(tenant_id)
        if found is None:
            raise KeyError(tenant_id)
        return found

    def _current(self) -> _Tenancy | None:
        bound: _Tenancy | None = getattr(self._bound, "tenancy", None)
        return bound

    def _tenancy(self, name: str) -> _Tenancy | None:
        spec = self._guest_specs.get(name.lower())
        if spec is None:
            return None
        key = str(spec["tenant_id"]).lower()
        with self.lock:
            if key not in self._guests:
                scenario = load_scenario(spec)
                tenant = TenantState(scenario)
                tenant.rbac.seed([(self.client_id, self.app_object_id, "Mailbox Audit Guard")])
                self._guests[key] = _Tenancy(
                    tenant, ActivityFeed(scenario, tenant.tenant_id, tenant.organization), scenario["consented"]
                )
            return self._guests[key]

    def _bind(self, path: str) -> None:
        match = TENANT_IN_PATH.match(path)
        self._bound.tenancy = self._tenancy(match.group("tenant")) if match else None

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind the six listeners on 127.0.0.1 (ephemeral ports) and serve in background threads."""
        if self._listeners:
            raise RuntimeError("emulator already started")
        if self._stop.is_set():
            raise RuntimeError("a stopped emulator cannot be restarted; create a new one")
        self._tmpdir = tempfile.mkdtemp(prefix="mag-emulator-")
        try:
            self._pki = TestPKI(self._tmpdir)
            self.app_certificate = AppCertificate(self._pki.app_certificate_pem)
            tls = self._pki.server_context()
            for name in ("exchange", "foreign", "msi", "ingestion", "graph", "manage", "compliance"):
                listener = Listener(name, self._dispatcher(name), self.wait, None if name in PLAIN_HTTP else tls)
                self._listeners[name] = listener
                listener.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, end open connections (and any hang fault), remove the temporary PKI files."""
        self._stop.set()
        listeners, self._listeners = list(self._listeners.values()), {}
        # In parallel: each shutdown waits for its serve loop's next poll.
        stoppers = [threading.Thread(target=listener.stop, daemon=True) for listener in listeners]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=5)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Emulator:
        return self if self._listeners else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, seconds: float | None) -> bool:
        """Sleep up to `seconds` (None: forever) but wake at stop(); True when woken by stop()."""
        return self._stop.wait(seconds)

    # ---- addresses and credentials --------------------------------------------------------------------------

    def _port(self, name: str) -> int:
        if name not in self._listeners:
            raise RuntimeError("emulator is not running; call start() first")
        return self._listeners[name].port

    def serve_host(self, host: str, listener: str = "exchange") -> str:
        """Let the in-process transport answer `https://{host}` (port 443) from `listener`, e.g. a regional
        Exchange host a `redirect` fault names; returns that base URL. Sockets still serve loopback only, so a
        client must be mounted (`mount`) after this call to reach it."""
        self._port(listener)
        self._served_hosts[host.lower()] = listener
        return f"https://{host.lower()}"

    def listener_for(self, url: str) -> str:
        """The name of the listener that serves `url` (by port; only loopback hosts, and `serve_host` names)."""
        parts = urlsplit(url)
        served = self._served_hosts.get((parts.hostname or "").lower())
        if served is not None and parts.port in (None, 443):
            return served
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"{parts.hostname!r} is not served by the emulator")
        for name, listener in self._listeners.items():
            if listener.port == parts.port:
                return name
        raise ValueError(f"no emulator listener on port {parts.port}")

    def dispatch_for(self, listener: str) -> Dispatch:
        """The request handler a listener serves with (what the in-process transport calls too)."""
        self._port(listener)
        return self._listeners[listener].dispatch

    def transport(self) -> EmulatorTransport:
        """A requests transport adapter answering from this emulator in process (emulator/transport.py)."""
        return EmulatorTransport(self)

    def mount(self, session: requests.Session, *listeners: str) -> requests.Session:
        """Mount the in-process transport on `session` for these listeners' URLs (default: exchange, graph, manage).

        Requests to any other URL, e.g. the token endpoints msal and azure-identity use, still go over sockets."""
        adapter = self.transport()
        for name in listeners or ("exchange", "graph", "manage", "compliance"):
            session.mount(f"{'http' if name in PLAIN_HTTP else 'https'}://127.0.0.1:{self._port(name)}/", adapter)
        for host in self._served_hosts:
            session.mount(f"https://{host}/", adapter)
        return session

    @property
    def exchange_url(self) -> str:
        return f"https://127.0.0.1:{self._port('exchange')}"

    @property
    def authority_url(self) -> str:
        return f"https://localhost:{self._port('exchange')}"

    @property
    def graph_url(self) -> str:
        """Microsoft Graph's base URL (without /v1.0) -> GRAPH_ENDPOINT."""
        return f"https://127.0.0.1:{self._port('graph')}"

    @property
    def manage_url(self) -> str:
        """The Management Activity API's base URL (own TLS listener "manage") -> O365_MANAGEMENT_ENDPOINT."""
        return f"https://127.0.0.1:{self._port('manage')}"

    @property
    def compliance_url(self) -> str:
        """The Security & Compliance admin API's base URL (own TLS listener "compliance") -> IPPS_ENDPOINT. Its
        global host name (`serve_host("ps.compliance.protection.outlook.com", "compliance")`) redirects."""
        return f"https://127.0.0.1:{self._port('compliance')}"

    @property
    def managed_identity_principal_id(self) -> str:
        """The user-assigned managed identity's service principal object id (what azd outputs)."""
        return self.mi_object_ids[self.managed_identity_client_id]

    @property
    def admin_upn(self) -> str:
        """The first scenario administrator (default admin@<organization>, an Exchange Administrator)."""
        return next(iter(self.admins))

    def admin(self, upn: str) -> dict[str, Any]:
        """A scenario administrator: `upn` and `directory_roles` (a test may change them on a running emulator)."""
        return self.admins[upn.lower()]

    @property
    def foreign_url(self) -> str:
        return f"https://localhost:{self._port('foreign')}"

    @property
    def identity_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port('msi')}/msi/token"

    @property
    def ingestion_url(self) -> str:
        return f"http://127.0.0.1:{self._port('ingestion')}/"

    @property
    def connection_string(self) -> str:
        """APPLICATIONINSIGHTS_CONNECTION_STRING pointing every App Insights endpoint at the ingestion listener."""
        return (
            f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.ingestion_url};"
            f"LiveEndpoint={self.ingestion_url}"
        )

    @property
    def ca_bundle(self) -> str:
        self._port("exchange")
        assert self._pki is not None
        return self._pki.ca_bundle

    @property
    def certificate_path(self) -> str:
        """PEM with the app's private key and certificate (azure-identity CertificateCredential format)."""
        self._port("exchange")
        assert self._pki is not None
        return self._pki.certificate_path

    @property
    def certificate_thumbprint(self) -> str:
        """SHA-1 thumbprint (hex) of the app certificate, for msal's `client_credential`."""
        self._port("exchange")
        assert self.app_certificate is not None
        return self.app_certificate.thumbprint

    @property
    def cursor_ttl(self) -> float:
        """Seconds a paging cursor lives (scenario `cursor_ttl_seconds`, default 1800); settable for tests."""
        return self._exchange.cursors.ttl

    @cursor_ttl.setter
    def cursor_ttl(self, seconds: float) -> None:
        self._exchange.cursors.ttl = seconds

    def env(self, auth_mode: str = "managed_identity") -> dict[str, str]:
        """Environment variables for the CLI/function app, for one credential type."""
        if auth_mode not in AUTH_MODES:
            raise ValueError(f"auth_mode must be one of {', '.join(AUTH_MODES)}")
        env = {
            "EXO_TENANT_ID": self.tenant_id,
            "EXO_ORGANIZATION": self.organization,
            "EXO_AUTH_MODE": auth_mode,
            "EXO_ENDPOINT": self.exchange_url,
            "EXO_AUTHORITY": self.authority_url,
            "GRAPH_ENDPOINT": self.graph_url,
            "O365_MANAGEMENT_ENDPOINT": self.manage_url,
            "IPPS_ENDPOINT": self.compliance_url,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "APPLICATIONINSIGHTS_CONNECTION_STRING": self.connection_string,
        }
        if auth_mode == "managed_identity":
            env.update(
                EXO_CLIENT_ID=self.managed_identity_client_id,
                IDENTITY_ENDPOINT=self.identity_endpoint,
                IDENTITY_HEADER=self.identity_header,
            )
        elif auth_mode == "federated_identity":
            env.update(
                EXO_CLIENT_ID=self.client_id,
                EXO_MANAGED_IDENTITY_CLIENT_ID=self.managed_identity_client_id,
                IDENTITY_ENDPOINT=self.identity_endpoint,
                IDENTITY_HEADER=self.identity_header,
            )
        elif auth_mode == "secret":
            env.update(EXO_CLIENT_ID=self.client_id, EXO_CLIENT_SECRET=self.client_secret)
        else:
            env.update(EXO_CLIENT_ID=self.client_id, EXO_CERTIFICATE_PATH=self.certificate_path)
        return env

    # ---- faults ----------------------------------------------------------------------------------------------

    def add_fault(self, fault: Fault | dict[str, Any]) -> Fault:
        """Activate a fault (a Fault or its dict form); returns it so tests can read `matched`/`fired`."""
        return self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def fired_faults(self) -> list[FiredFault]:
        """Every firing of every fault, in order."""
        return self.faults.fired_log()

    # ---- request log -----------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request to every listener, in arrival order (a snapshot)."""
        with self._records_lock:
            return list(self._requests)

    @property
    def foreign_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.listener == "foreign"]

    @property
    def token_requests(self) -> list[RecordedRequest]:
        """Requests to the token endpoint and the managed-identity endpoint (not discovery)."""
        return [r for r in self.requests if r.listener in ("exchange", "msi") and is_token_request(r.path)]

    @property
    def graph_requests(self) -> list[RecordedRequest]:
        """Requests to the Graph listener, in order; `operation` names each (emulator/graph.py)."""
        return [r for r in self.requests if r.listener == "graph"]

    def graph_writes(self) -> list[RecordedRequest]:
        """Graph POSTs (assignments), whatever they were answered."""
        return [r for r in self.graph_requests if r.method == "POST"]

    @property
    def manage_requests(self) -> list[RecordedRequest]:
        """Requests to the Management Activity API listener, in order; `operation` names each (start, stop, list,
        content, notifications, blob)."""
        return [r for r in self.requests if r.listener == "manage"]

    def invocations(self, cmdlet: str | None = None) -> list[RecordedRequest]:
        """InvokeCommand requests on the Exchange listener, optionally of one cmdlet (case-insensitive)."""
        return [
            r
            for r in self.requests
            if r.listener == "exchange"
            and INVOKE_PATH.match(r.path)
            and (cmdlet is None or (r.cmdlet or "").lower() == cmdlet.lower())
        ]

    def compliance_invocations(self, cmdlet: str | None = None) -> list[RecordedRequest]:
        """InvokeCommand requests on the Security & Compliance listener, optionally of one cmdlet."""
        return [
            r
            for r in self.requests
            if r.listener == "compliance" and (cmdlet is None or (r.cmdlet or "").lower() == cmdlet.lower())
        ]

    def writes(self) -> list[RecordedRequest]:
        """InvokeCommand requests for Set-*/Enable-* cmdlets, whatever they were answered."""
        return [r for r in self.invocations() if is_write(r.cmdlet)]

    @property
    def telemetry(self) -> list[dict[str, Any]]:
        """Every ingested envelope, flattened over all POSTs."""
        with self._records_lock:
            return list(self._telemetry)

    def record_telemetry(self, envelopes: list[dict[str, Any]]) -> None:
        with self._records_lock:
            self._telemetry.extend(envelopes)

    def reset_log(self) -> None:
        """Forget recorded requests, telemetry and fired faults (tenant state and faults stay)."""
        with self._records_lock:
            self._requests.clear()
            self._telemetry.clear()
        self.faults.clear_log()

    # ---- dispatch --------------------------------------------------------------------------------------------

    def _dispatcher(self, listener: str) -> Dispatch:
        def dispatch(request: Request) -> Response:
            record = self._record(request)
            try:
                if listener in ("exchange", "manage", "compliance"):
                    self._bind(request.path)
                response = self._route(listener, request)
            except Exception as exc:  # an emulator bug must still answer, and show up in the test
                log.exception("emulator failed on %s %s", request.method, request.path)
                response = json_response(500, {"error": {"code": "EmulatorError", "message": repr(exc)}})
            finally:
                self._bound.tenancy = None
            record.status = None if response.action == "hang" else response.status
            return response

        return dispatch

    def _record(self, request: Request) -> RecordedRequest:
        body: Any = request.json()
        if body is None:
            body = request.raw_body
        cmdlet = None
        if isinstance(body, dict) and isinstance(body.get("CmdletInput"), dict):
            name = body["CmdletInput"].get("CmdletName")
            cmdlet = (self.tenant.canonical_cmdlet(name) or name) if isinstance(name, str) else None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
            host=request.host,
            listener=request.listener,
            cmdlet=cmdlet,
            form=request.form(),
            operation=operation_for(request.method, request.path)
            if request.listener == "graph"
            else activity_operation(request.path)
            if request.listener == "manage"
            else None,
        )
        with self._records_lock:
            self._requests.append(record)
        return record

    def _route(self, listener: str, request: Request) -> Response:
        if listener == "exchange":
            if INVOKE_PATH.match(request.path):
                return self._exchange.handle(request)
            answer = self._identity.handle_authority(request)
        elif listener == "msi":
            answer = self._identity.handle_msi(request)
        elif listener == "ingestion":
            answer = self._ingestion.handle(request)
        elif listener == "graph":
            answer = self._graph.handle(request)
        elif listener == "manage":
            answer = self._activity.handle(request)
        elif listener == "compliance":
            answer = self._compliance.handle(request)
        else:  # foreign: a host that must never be contacted; answer like a lenient server would
            answer = json_response(200, {"value": [], "@adminapi.warnings": []})
        return answer or json_response(
            404, {"error": {"code": "NotFound", "message": f"No route for {request.method} {request.path}"}}
        )
