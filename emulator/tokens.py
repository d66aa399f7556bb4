"""Access tokens (HS256 JWTs signed with a per-run key) and client-assertion checks for certificate credentials."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

EXCHANGE_AUDIENCE = "https://outlook.office365.com"
EXCHANGE_ROLE = "Exchange.ManageAsApp"
EXCHANGE_DELEGATED_SCOPE = "AdminApi.AccessAsUser.All"  # what a signed-in administrator's Exchange token carries
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class TokenError(Exception):
    """A token or assertion that must be refused; the message says why (it goes into the 401 body)."""


def audience_from_scope(scope: str) -> str:
    """`https://outlook.office365.com/.default` -> `https://outlook.office365.com` (first scope wins)."""
    first = scope.split(maxsplit=1)[0] if scope.split() else ""
    if first.endswith("/.default"):
        first = first[: -len("/.default")]
    return first.rstrip("/")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """Issues and verifies the emulator's access tokens."""

    def __init__(self, tenant_id: str, issuer_base: str = "https://sts.windows.net") -> None:
        self.tenant_id = tenant_id
        self.issuer = f"{issuer_base}/{tenant_id}/"
        self._key = secrets.token_bytes(32)  # per run: tokens from an earlier run never verify

    def issue(
        self,
        *,
        audience: str,
        app_id: str,
        object_id: str,
        roles: list[str],
        wids: list[str],
        lifetime: int = 3600,
        extra: dict[str, Any] | None = None,
        tenant_id: str | None = None,
    ) -> tuple[str, int]:
        """Return (JWT, exp). `lifetime` may be shortened by the short_token_lifetime fault; `extra` adds claims
        (a delegated token's idtyp, upn and scp)."""
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": self.issuer if tenant_id is None else self.issuer.replace(self.tenant_id, tenant_id),
            "tid": tenant_id or self.tenant_id,
            "appid": app_id,
            "azp": app_id,
            "oid": object_id,
            "sub": object_id,
            "roles": list(roles),
            "wids": list(wids),
            "ver": "1.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "uti": _b64(secrets.token_bytes(12)),
        }
        claims.update(extra or {})
        return jwt.encode(claims, self._key, algorithm="HS256", headers={"typ": "JWT"}), now + lifetime

    def verify(self, token: str) -> dict[str, Any]:
        """Signature, exp and nbf; the caller checks aud, tid and roles (different answers per failure)."""
        try:
            return jwt.decode(
                token, self._key, algorithms=["HS256"], options={"verify_aud": False, "require": ["exp", "aud", "tid"]}
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("The token has expired.") from None
        except jwt.InvalidSignatureError:
            raise TokenError("The token signature is invalid.") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"The token is invalid: {exc}.") from None


class AppCertificate:
    """The emulated app registration's certificate: thumbprints and the public key assertions are checked with."""

    def __init__(self, certificate_pem: bytes) -> None:
        self.certificate = x509.load_pem_x509_certificate(certificate_pem)
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        self.der_b64 = base64.b64encode(der).decode()
        self.sha1 = hashlib.sha1(der).digest()
        self.sha256 = hashlib.sha256(der).digest()

    @property
    def thumbprint(self) -> str:
        """SHA-1 thumbprint in hex, the form msal's `client_credential={"thumbprint": ...}` takes."""
        return self.sha1.hex().upper()

    def verify_assertion(self, assertion: str, *, client_id: str, audiences: set[str]) -> dict[str, Any]:
        """Accept RS256 + x5t (msal thumbprint form, azure-identity) and PS256 + x5t#S256 + x5c (msal
        public_certificate form); signature by this certificate, aud = the token endpoint, iss = sub = client."""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise TokenError(f"client_assertion is not a JWT: {exc}") from None
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            raise TokenError(f"client_assertion alg {alg!r} is not supported")
        if "x5t" in header:
            if str(header["x5t"]).rstrip("=") != _b64(self.sha1):  # msal keeps the base64 padding
                raise TokenError("x5t does not match the registered certificate")
        elif "x5t#S256" in header:
            if str(header["x5t#S256"]).rstrip("=") != _b64(self.sha256):
                raise TokenError("x5t#S256 does not match the registered certificate")
            if alg == "PS256" and "x5c" not in header:
                raise TokenError("x5c is required with x5t#S256")
        else:
            raise TokenError("client_assertion header names no certificate (x5t / x5t#S256)")
        # msal sends x5c as PEM body lines (with newlines); compare without whitespace.
        if "x5c" in header and (not header["x5c"] or "".join(str(header["x5c"][0]).split()) != self.der_b64):
            raise TokenError("x5c does not carry the registered certificate")
        try:
            claims = jwt.decode(
                assertion,
                self.certificate.public_key(),
                algorithms=["RS256", "PS256"],
                audience=sorted(audiences),
                leeway=60,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"client_assertion rejected: {exc}") from None
        if claims["iss"] != client_id or claims["sub"] != client_id:
            raise TokenError("client_assertion iss and sub must both be the client id")
        return claims
