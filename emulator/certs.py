"""Test PKI: a trustme CA whose leaf serves localhost/127.0.0.1, and the app registration's RSA certificate."""

from __future__ import annotations

import datetime
import functools
import os
import ssl

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


class TestPKI:
    """Writes the CA bundle and the app PEM into `directory` and builds the server-side TLS context."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: str) -> None:
        self.ca = trustme.CA(organization_name="Mailbox Audit Guard emulator")
        self.leaf = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_bundle = os.path.join(directory, "emulator-ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_bundle)
        key_pem, cert_pem = app_key_and_certificate()
        self.app_key_pem = key_pem
        self.app_certificate_pem = cert_pem
        self.certificate_path = os.path.join(directory, "emulator-app.pem")
        with open(self.certificate_path, "wb") as handle:
            handle.write(key_pem + cert_pem)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(context)
        return context


@functools.lru_cache(maxsize=1)
def app_key_and_certificate() -> tuple[bytes, bytes]:
    """(PKCS#8 key PEM, certificate PEM). RSA because azure-identity's CertificateCredential needs it.

    Cached per process: RSA key generation is the slowest step of start(), and the key is test material only.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbox-audit-guard-emulator-app")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)
