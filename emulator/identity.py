"""Entra ID stand-in (OIDC discovery, client-credentials token endpoint) and the App Service MSI endpoint."""

from __future__ import annotations

import datetime
import hmac
import re
import uuid
from typing import TYPE_CHECKING, Any

from .activity import DEFAULT_ACTIVITY_ROLES, MANAGE_AUDIENCES
from .compliance import COMPLIANCE_AUDIENCES
from .faults import RESPONSE_KINDS, respond
from .graph import DEFAULT_GRAPH_ROLES, GRAPH_AUDIENCE
from .tokens import ASSERTION_TYPE, EXCHANGE_AUDIENCE, EXCHANGE_DELEGATED_SCOPE, TokenError, audience_from_scope
from .wire import Request, Response, json_response

if TYPE_CHECKING:
    from .emulator import Emulator

DISCOVERY_PATH = re.compile(r"^/(?P<tenant>[^/]+)(?:/v2\.0)?/\.well-known/openid-configuration/?$", re.IGNORECASE)
TOKEN_PATH = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token/?$", re.IGNORECASE)
KEYS_PATH = re.compile(r"^/(?P<tenant>[^/]+)/discovery/v2\.0/keys/?$", re.IGNORECASE)
MSI_PATH = "/msi/token"
IMDS_PATH = "/metadata/identity/oauth2/token"
TOKEN_FAULT_KINDS = frozenset(RESPONSE_KINDS - {"expire_cursor"})


FEDERATION_AUDIENCES = (
    "api://AzureADTokenExchange",
    "api://AzureADTokenExchangeUSGov",
    "api://AzureADTokenExchangeChina",
)


def is_token_request(path: str) -> bool:
    return bool(TOKEN_PATH.match(path)) or path in (MSI_PATH, IMDS_PATH)


def aad_error(status: int, error: str, code: int, text: str) -> Response:
    """Entra's error body: error, error_description ("AADSTSnnnn: ..."), error_codes and trace ids."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    return json_response(
        status,
        {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now}"
            ),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )


class IdentityApi:
    """Token issuance for the app registration (secret or certificate) and for the managed identity."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in {self.emu.tenant_id.lower(), self.emu.tenant.organization.lower()}

    # ---- authority (https listener, host localhost) --------------------------------------------------------

    def handle_authority(self, req: Request) -> Response | None:
        """Answer discovery/keys/token requests; None when the path is not an authority route."""
        if match := DISCOVERY_PATH.match(req.path):
            return self._discovery(match.group("tenant"))
        if KEYS_PATH.match(req.path):
            return json_response(200, {"keys": []})  # access tokens are HS256: nothing to publish
        if match := TOKEN_PATH.match(req.path):
            fault = self.emu.faults.fire(TOKEN_FAULT_KINDS, listener="token", path=req.path)
            proceed = lambda: self._token(req, match.group("tenant"))  # noqa: E731
            return respond(fault, "token", proceed, self.emu.wait) if fault else proceed()
        return None

    def _discovery(self, tenant: str) -> Response:
        if not self._known_tenant(tenant):
            return aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{self.emu.authority_url}/{tenant}"
        return json_response(
            200,
            {
                "issuer": f"{self.emu.authority_url}/{self.emu.tenant_id}/v2.0",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "request_uri_parameter_supported": False,
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
            },
        )

    def _token(self, req: Request, tenant: str) -> Response:
        if not self._known_tenant(tenant):
            return aad_error(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you "
                "have the correct tenant ID and are signing into the "
                "correct cloud.",
            )
        form = req.form() or {}
        if form.get("grant_type") == "password":
            return self._password_token(req, form)
        if form.get("grant_type") != "client_credentials":
            return aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        scope = form.get("scope", "")
        if not scope.split() or not scope.split()[0].endswith("/.default"):
            return aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. "
                "Client credential flows must have a scope value with "
                "/.default suffixed to the resource identifier.",
            )
        failure = self._check_client(form, tenant)
        if failure:
            return aad_error(401, "invalid_client", 7000215, failure)
        if not self.emu.consented:
            return aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory '{tenant}'. "
                "This can happen if the application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant.",
            )
        lifetime, honest = self._lifetime("token", req.path)
        token, _ = self._issue(audience_from_scope(scope), self.emu.client_id, self.emu.app_object_id, lifetime)
        expires_in = lifetime - 1 if honest else 3599
        return json_response(
            200, {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token}
        )

    def _password_token(self, req: Request, form: dict[str, str]) -> Response:
        """A delegated token for a scenario administrator (`exchange_rbac.admins`), any public client id (the
        Azure CLI's, in the tests' stand-in `az`): the grant's sign-in. Scopes: the first `/.default` one."""
        username = form.get("username", "").lower()
        expected = self.emu.admin_passwords.get(username)
        if expected is None or not hmac.compare_digest(form.get("password", "").encode(), expected.encode()):
            return aad_error(
                400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password."
            )
        scopes = [s for s in form.get("scope", "").split() if s.endswith("/.default")]
        if not scopes:
            return aad_error(
                400, "invalid_scope", 70011, "The provided request must include a resource /.default scope."
            )
        audience = audience_from_scope(scopes[0])
        admin = self.emu.admin(username)
        with self.emu.lock:
            roles = list(self.emu.graph.caller_permissions) if audience == GRAPH_AUDIENCE else []
        # Security & Compliance is served by the same Exchange resource: its delegated admin scope, too [I].
        admin_api = audience == EXCHANGE_AUDIENCE or audience in COMPLIANCE_AUDIENCES
        scp = EXCHANGE_DELEGATED_SCOPE if admin_api else "user_impersonation"
        lifetime, honest = self._lifetime("token", req.path)
        token, _ = self.emu.issuer.issue(
            audience=audience,
            app_id=form.get("client_id", ""),
            object_id=self.emu.admin_object_ids[username],
            roles=roles,
            wids=list(admin["directory_roles"]),
            lifetime=lifetime,
            extra={"idtyp": "user", "upn": username, "scp": scp},
        )
        expires_in = lifetime - 1 if honest else 3599
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "scope": scopes[0],
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": token,
            },
        )

    def _check_client(self, form: dict[str, str], tenant: str) -> str | None:
        """None when the client authenticated; otherwise why not (the text goes into the 401)."""
        if form.get("client_id") != self.emu.client_id:
            return f"Invalid client secret provided. Application '{form.get('client_id')}' is not known here."
        if "client_secret" in form:
            if hmac.compare_digest(form["client_secret"].encode(), self.emu.client_secret.encode()):
                return None
            return (
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{self.emu.client_id}'."
            )
        if "client_assertion" in form:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return f"client_assertion_type must be {ASSERTION_TYPE}."
            federated = self._federated_assertion(form["client_assertion"])
            if federated is not False:
                return federated
            audiences = {
                f"{base}/{t}/oauth2/v2.0/token"
                for base in (self.emu.authority_url, self.emu.exchange_url)
                for t in (tenant, self.emu.tenant_id, self.emu.tenant.organization)
            }
            try:
                self.emu.app_certificate.verify_assertion(
                    form["client_assertion"], client_id=self.emu.client_id, audiences=audiences
                )
            except TokenError as exc:
                return f"Invalid client assertion: {exc}."
            return None
        return "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."

    def _federated_assertion(self, assertion: str) -> str | bool | None:
        """A managed identity's token as the assertion (workload identity federation): None when it is one of
        the app's federated credentials, why not when it is not; False when it is no token of ours (a certificate
        assertion, checked next)."""
        try:
            claims = self.emu.issuer.verify(assertion)
        except TokenError as exc:
            text = str(exc)
            return (
                f"AADSTS700024: Client assertion is not within its valid time range. {text}"
                if "expired" in text
                else False
            )
        if claims.get("aud") not in FEDERATION_AUDIENCES:
            return (
                "AADSTS700212: No matching federated identity record found for presented assertion audience "
                f"'{claims.get('aud')}'."
            )
        if claims.get("sub") not in self.emu.federated_identities:
            return (
                "AADSTS70021: No matching federated identity record found for presented assertion. Assertion "
                f"Issuer: '{claims.get('iss')}'. Assertion Subject: '{claims.get('sub')}'."
            )
        return None

    def _lifetime(self, listener: str, path: str) -> tuple[int, bool]:
        fault = self.emu.faults.fire({"short_token_lifetime"}, listener=listener, path=path)
        if fault is None:
            return 3600, False
        return int(fault.options.get("seconds", 5)), bool(fault.options.get("honest", False))

    def _issue(self, audience: str, app_id: str, object_id: str, lifetime: int) -> tuple[str, int]:
        """A token for `audience`. Graph tokens carry the Graph permissions the scenario grants the caller
        (`graph.caller_permissions`); Management Activity API tokens the principal's `activity_roles` (default
        ActivityFeed.Read) plus any ActivityFeed.* among its `roles`; every other audience gets the principal's
        roles and directory roles."""
        with self.emu.lock:
            if audience == GRAPH_AUDIENCE:
                # The caller's Graph permissions (grant-permissions' administrator), plus the app's own Graph
                # application permissions (`graph_roles`, default none) for the search.
                own = list(self.emu.tenant.principal.get("graph_roles", DEFAULT_GRAPH_ROLES))
                roles = list(self.emu.graph.caller_permissions)
                roles += [r for r in own if r not in roles]
                wids = []
            elif audience in MANAGE_AUDIENCES:
                principal = self.emu.tenant.principal
                roles = list(principal.get("activity_roles", DEFAULT_ACTIVITY_ROLES))
                granted = [str(r) for r in principal.get("roles") or []]  # a scenario may list them there too
                roles += [r for r in granted if r.startswith("ActivityFeed.") and r not in roles]
                wids = []
            else:
                principal = self.emu.tenant.principal
                roles, wids = list(principal.get("roles") or []), list(principal.get("directory_roles") or [])
        return self.emu.issuer.issue(
            audience=audience,
            app_id=app_id,
            object_id=object_id,
            roles=roles,
            wids=wids,
            lifetime=lifetime,
            tenant_id=self.emu.tenant_id,  # the tenant the request names (the home tenant for the MSI endpoint)
        )

    # ---- managed identity (plain http listener) -------------------------------------------------------------

    def handle_msi(self, req: Request) -> Response | None:
        if req.path not in (MSI_PATH, IMDS_PATH):
            return None
        fault = self.emu.faults.fire(TOKEN_FAULT_KINDS, listener="msi", path=req.path)
        proceed = lambda: self._msi(req)  # noqa: E731
        return respond(fault, "msi", proceed, self.emu.wait) if fault else proceed()

    def _msi(self, req: Request) -> Response:
        imds = req.path == IMDS_PATH
        if imds and req.headers.get("metadata", "").lower() != "true":
            return json_response(
                400, {"error": "invalid_request", "error_description": "Required metadata header not specified"}
            )
        if not imds and not hmac.compare_digest(
            req.headers.get("x-identity-header", "").encode(), self.emu.identity_header.encode()
        ):
            return json_response(401, {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong."})
        resource = req.query.get("resource", "")
        if not req.query.get("api-version") or not resource:
            return json_response(400, {"statusCode": 400, "message": "api-version and resource are required."})
        app_id = self._managed_identity(req.query)
        if app_id is None:
            return json_response(
                400,
                {
                    "statusCode": 400,
                    "message": "No User Assigned or Delegated Managed Identity found for specified ClientId.",
                },
            )
        lifetime, honest = self._lifetime("msi", req.path)
        object_id = self.emu.mi_object_ids[app_id]
        token, exp = self._issue(audience_from_scope(resource), app_id, object_id, lifetime)
        # Unless `honest`, a shortened token still claims the normal hour, so clients meet the 401.
        reported_lifetime = lifetime if honest else 3600
        payload: dict[str, Any] = {
            "access_token": token,
            "expires_on": str(exp - lifetime + reported_lifetime),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": app_id,
        }
        if imds:
            payload["expires_in"] = str(reported_lifetime)
        return json_response(200, payload)

    def _managed_identity(self, query: dict[str, str]) -> str | None:
        """The identity asked for: the user-assigned one (by client_id, or any resource/object id), else system."""
        if "client_id" in query:
            return query["client_id"] if query["client_id"] == self.emu.managed_identity_client_id else None
        if any(k in query for k in ("mi_res_id", "msi_res_id", "object_id", "principal_id")):
            return self.emu.managed_identity_client_id
        return self.emu.system_identity_client_id
