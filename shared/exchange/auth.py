"""App-only tokens for Exchange Online (and, with another scope, the Management Activity API): managed identity
(azure-identity), certificate or secret (msal), or federated identity (msal, the managed identity's token as the
client assertion of a multi-tenant app: no stored secret for any tenant).

Tokens are cached until shortly before they expire; in federated_identity mode, per tenant and scope for the
life of the process (one worker serves many tenants' runs), and the managed identity's assertion once for all
tenants. Nothing here logs or embeds a token or a secret.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from shared.config.settings import Settings
from shared.text import first_line

log = logging.getLogger("mailbox_audit_guard.auth")

# Refresh this long before expiry, so a token never expires between being read and being used.
REFRESH_MARGIN_SECONDS = 300
# Token endpoints answer in well under a second; a slow one must not eat the run's time budget.
HTTP_TIMEOUT = (5, 15)
# After a failure, later calls in the next minute fail at once with the same error instead of waiting again.
FAILURE_MEMORY_SECONDS = 60


class TokenError(Exception):
    """No token could be obtained. The message says why and what to check; it never holds a secret."""


class TokenProvider(Protocol):
    def get_token(self) -> str: ...

    def invalidate(self) -> None: ...


class _CachingProvider:
    """Caches one token until REFRESH_MARGIN_SECONDS before its expiry; subclasses fetch."""

    description = "token provider"

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0
        self._failure: tuple[float, TokenError] | None = None

    def get_token(self) -> str:
        with self._lock:
            if self._token is None or time.time() >= self._expires_on - REFRESH_MARGIN_SECONDS:
                if self._failure and time.monotonic() - self._failure[0] < FAILURE_MEMORY_SECONDS:
                    raise self._failure[1]
                try:
                    self._token, self._expires_on = self._fetch()
                except TokenError as exc:
                    self._failure = (time.monotonic(), exc)
                    raise
                self._failure = None
                log.debug(
                    "Obtained a token for %s from %s (expires in %.0f s)",
                    self.scope,
                    self.description,
                    self._expires_on - time.time(),
                )
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token and the client behind it, so the next call asks the identity platform anew."""
        with self._lock:
            self._token = None
            self._expires_on = 0.0
            self._failure = None
            self._reset()

    def close(self) -> None:
        """Release the library client (sockets) behind the provider."""
        with self._lock:
            self._reset()

    def _fetch(self) -> tuple[str, float]:
        raise NotImplementedError

    def _reset(self) -> None:
        """Drop library-level caches (msal / azure-identity keep their own)."""


class ManagedIdentityTokenProvider(_CachingProvider):
    """The Function App's managed identity, through azure-identity (IDENTITY_ENDPOINT / IDENTITY_HEADER or IMDS)."""

    def __init__(self, scope: str, client_id: str | None, client_id_setting: str = "EXO_CLIENT_ID") -> None:
        super().__init__(scope)
        self.client_id = client_id
        self.client_id_setting = client_id_setting
        kind = f"user-assigned {client_id}" if client_id else "system-assigned"
        self.description = f"the {kind} managed identity"
        self._credential: Any = None

    def _fetch(self) -> tuple[str, float]:
        from azure.core.exceptions import AzureError
        from azure.identity import ManagedIdentityCredential

        if self._credential is None:
            kwargs: dict[str, Any] = {
                "connection_timeout": HTTP_TIMEOUT[0],
                "read_timeout": HTTP_TIMEOUT[1],
                "retry_total": 1,
            }
            if self.client_id:
                kwargs["client_id"] = self.client_id
            self._credential = ManagedIdentityCredential(**kwargs)
        try:
            token = self._credential.get_token(self.scope)
        except (AzureError, ValueError, KeyError, TypeError) as exc:
            raise TokenError(
                f"Could not get a token from {self.description} for {self.scope}: {first_line(exc)}. "
                f"Check that the Function App has this identity assigned (and {self.client_id_setting} names it when "
                "it is user-assigned), or set EXO_AUTH_MODE=certificate/secret when running outside Azure."
            ) from None
        return token.token, float(token.expires_on)

    def _reset(self) -> None:
        if self._credential is not None:
            self._credential.close()
        self._credential = None


class MsalTokenProvider(_CachingProvider):
    """An app registration's client secret or certificate, through msal's ConfidentialClientApplication."""

    def __init__(
        self,
        scope: str,
        authority: str,
        tenant_id: str,
        client_id: str,
        credential: Any,
        description: str,
        permission: str = "the Exchange.ManageAsApp permission",
    ) -> None:
        super().__init__(scope)
        self.permission = permission
        self.authority = f"{authority}/{tenant_id}"
        self.client_id = client_id
        self.description = description
        self._credential = credential
        self._app: Any = None

    def _fetch(self) -> tuple[str, float]:
        import msal

        try:
            if self._app is None:
                # instance_discovery=False: talk to the configured authority only, never to a discovery host.
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self._credential,
                    authority=self.authority,
                    instance_discovery=False,
                    timeout=HTTP_TIMEOUT,
                )
            result = self._app.acquire_token_for_client(scopes=[self.scope])
        except Exception as exc:  # library boundary: msal raises many types for a broken login service
            self._app = None
            raise TokenError(
                f"Could not reach the login service at {self.authority} for {self.description}: "
                f"{type(exc).__name__}. Check EXO_AUTHORITY / EXO_CLOUD and the network path."
            ) from None
        if not isinstance(result, dict) or "access_token" not in result:
            error = result.get("error", "unknown_error") if isinstance(result, dict) else "no_answer"
            description = result.get("error_description", "") if isinstance(result, dict) else ""
            raise TokenError(
                f"The login service refused a token for {self.description} ({error}): "
                f"{first_line(description) or 'no description'}. Check EXO_CLIENT_ID, the credential, and that "
                f"the app has {self.permission} with admin consent."
            )
        expires_in = float(result.get("expires_in", 0) or 0)
        return result["access_token"], time.time() + expires_in

    def _reset(self) -> None:
        self._app = None


class CredentialTokenProvider(_CachingProvider):
    """Tokens from an azure-identity credential (e.g. an administrator's Azure CLI login: a delegated token), for
    grant-permissions' Exchange part. The credential's own error text is not repeated: it may quote a token."""

    def __init__(self, credential: Any, scope: str, description: str = "the signed-in administrator") -> None:
        super().__init__(scope)
        self._credential = credential
        self.description = description

    def _fetch(self) -> tuple[str, float]:
        from azure.core.exceptions import AzureError

        try:
            token = self._credential.get_token(self.scope)
        except (AzureError, ValueError, KeyError, TypeError) as exc:
            raise TokenError(
                f"Could not get a token for {self.scope} from {self.description} ({type(exc).__name__}). Sign in "
                "as an Exchange Administrator of the tenant (`az login --tenant <tenant id>`) and try again."
            ) from None
        return token.token, float(token.expires_on)


class FederatedTokenProvider(MsalTokenProvider):
    """The multi-tenant app `client_id` in one customer tenant, its client assertion the managed identity's token
    for the cloud's token-exchange audience (a federated credential of the app): no secret is stored anywhere."""

    def __init__(
        self,
        scope: str,
        authority: str,
        tenant_id: str,
        client_id: str,
        assertion: _CachingProvider,
        permission: str = "the Exchange.ManageAsApp permission",
    ) -> None:
        self.assertion = assertion
        super().__init__(
            scope,
            authority,
            tenant_id,
            client_id,
            {"client_assertion": assertion.get_token},  # msal calls it for each token request: never stale
            f"app {client_id} in tenant {tenant_id} (federated with {assertion.description})",
            permission,
        )

    def _fetch(self) -> tuple[str, float]:
        try:
            self.assertion.get_token()  # first, so that its failure is named as such, not as the login service's
        except TokenError as exc:
            raise TokenError(f"No client assertion for {self.description}: {exc}") from None
        return super()._fetch()


_SHARED_LOCK = threading.Lock()
_SHARED: dict[tuple[str, ...], _CachingProvider] = {}  # federated_identity: per (tenant, app, scope), per process


def _shared(key: tuple[str, ...], make: Any) -> Any:
    with _SHARED_LOCK:
        provider = _SHARED.get(key)
        if provider is None:
            provider = _SHARED[key] = make()
        return provider


def forget_cached_tokens() -> None:
    """Drop every process-wide provider (tests; a worker never needs to: tokens are refreshed before expiry)."""
    with _SHARED_LOCK:
        providers = list(_SHARED.values())
        _SHARED.clear()
    for provider in providers:
        provider.close()


def federated_provider(settings: Settings, scope: str, permission: str) -> FederatedTokenProvider:
    """The tenant's provider of this process, made on first use; the assertion is shared by every tenant."""
    assert settings.client_id is not None  # validated by the settings
    audience = settings.cloud.federation_audience
    mi = settings.managed_identity_client_id or ""
    assertion = _shared(
        ("assertion", audience, mi),
        lambda: ManagedIdentityTokenProvider(
            f"{audience}/.default", settings.managed_identity_client_id, "EXO_MANAGED_IDENTITY_CLIENT_ID"
        ),
    )
    key = ("federated", settings.authority, settings.tenant_id, settings.client_id, scope, audience, mi)
    provider: FederatedTokenProvider = _shared(
        key,
        lambda: FederatedTokenProvider(
            scope, settings.authority, settings.tenant_id, settings.client_id, assertion, permission
        ),
    )
    return provider


def load_certificate_credential(path: str, password: str | None) -> dict[str, str]:
    """Read a PEM holding a private key and its certificate into msal's credential form (RS256 + x5t)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        with open(path, "rb") as handle:
            pem = handle.read()
        key = serialization.load_pem_private_key(pem, password.encode() if password else None)
        certificate = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError, TypeError) as exc:
        raise TokenError(
            f"EXO_CERTIFICATE_PATH: could not read a private key and certificate from the PEM file "
            f"({type(exc).__name__}); check the file and EXO_CERTIFICATE_PASSWORD."
        ) from None
    unencrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303 (x5t is SHA-1 by definition)
    return {"private_key": unencrypted, "thumbprint": thumbprint}


def token_provider_for(settings: Settings, scope: str | None = None, *, permission: str | None = None) -> TokenProvider:
    """Build the provider the settings ask for: tokens for `scope` (default Exchange's), with the same credential.

    `permission` names what the app needs for that scope, for the message when the login service refuses."""
    scope = scope or settings.token_scope
    permission = permission or "the Exchange.ManageAsApp permission"
    if settings.auth_mode == "managed_identity":
        return ManagedIdentityTokenProvider(scope, settings.client_id)
    if settings.auth_mode == "federated_identity":
        return federated_provider(settings, scope, permission)
    assert settings.client_id is not None  # validated by Settings.from_env
    if settings.auth_mode == "secret":
        return MsalTokenProvider(
            scope,
            settings.authority,
            settings.tenant_id,
            settings.client_id,
            settings.client_secret,
            f"app {settings.client_id} (client secret)",
            permission,
        )
    credential = load_certificate_credential(str(settings.certificate_path), settings.certificate_password)
    return MsalTokenProvider(
        scope,
        settings.authority,
        settings.tenant_id,
        settings.client_id,
        credential,
        f"app {settings.client_id} (certificate {credential['thumbprint'][:8]}…)",
        permission,
    )
