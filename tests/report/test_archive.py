"""Archiving evidence to Blob Storage (shared.evidence.archive) against a real Azurite, plus the settings it reads."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import traceback
import uuid
from typing import Any, ClassVar

import pytest

from shared.evidence.archive import (
    ArchiveError,
    archive_evidence,
    blob_prefix,
    blob_service_from_env,
    canonical_json,
    container_from_env,
)
from shared.evidence.html import render_html
from shared.evidence.markdown import render_markdown
from tests.report.documents import check_document, remediate_document
from tests.support.report_tools import DEV_KEY, REPO, connection_string, free_port

PREFIX = "0b5c1c1e-1111-2222-3333-444455556666/2026/11/28/"


def fresh_container() -> str:
    return f"evidence-{uuid.uuid4().hex[:12]}"


def service(azurite: Any, **options: Any) -> Any:
    client = blob_service_from_env({"AzureWebJobsStorage": azurite.connection_string}, **options)
    assert client is not None
    return client


def no_secret_in(error: ArchiveError, *secrets: str) -> None:
    """Neither the message nor anything a logged traceback would print carries a secret."""
    rendered = "".join(traceback.format_exception(error))
    for secret in (*secrets, "AccountKey", "SharedAccessSignature"):
        assert secret not in str(error) and secret not in rendered, secret


# ---------------------------------------------------------------------------------------------------- with Azurite


def test_upload_creates_the_container_and_reads_back(azurite):
    blobs, container, document = service(azurite), fresh_container(), remediate_document()
    assert not blobs.get_container_client(container).exists()

    names = archive_evidence(document, container=container, blob_service=blobs)

    run = PREFIX + document["run_id"]
    assert names == [f"{run}.json", f"{run}.html", f"{run}.md"]
    assert blobs.get_container_client(container).exists()
    expected = {
        "json": (canonical_json(document), "application/json; charset=utf-8"),
        "html": (render_html(document).encode(), "text/html; charset=utf-8"),
        "md": (render_markdown(document).encode(), "text/markdown; charset=utf-8"),
    }
    for name in names:
        blob = blobs.get_blob_client(container, name)
        data, content_type = expected[name.rsplit(".", 1)[1]]
        assert blob.download_blob().readall() == data
        properties = blob.get_blob_properties()
        assert properties.content_settings.content_type == content_type
        assert properties.metadata["sha256"] == hashlib.sha256(data).hexdigest()
        assert properties.metadata["run_id"] == document["run_id"]
    stored = blobs.get_blob_client(container, names[0]).download_blob().readall()
    assert json.loads(stored.decode("utf-8")) == document
    assert stored == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_evidence_is_write_once(azurite):
    blobs, container, document = service(azurite), fresh_container(), check_document()
    names = archive_evidence(document, container=container, blob_service=blobs)
    before = [blobs.get_blob_client(container, name).get_blob_properties().etag for name in names]

    changed = {**document, "status": "Compliant"}
    with pytest.raises(ArchiveError, match="already exists") as caught:
        archive_evidence(changed, container=container, blob_service=blobs)

    assert "write-once" in str(caught.value) and names[0] in str(caught.value)
    assert document["run_id"] in str(caught.value)
    after = [blobs.get_blob_client(container, name).get_blob_properties().etag for name in names]
    assert after == before, "the first archive is left exactly as it was"
    no_secret_in(caught.value, DEV_KEY)


def test_a_second_run_goes_into_the_existing_container(azurite):
    blobs, container = service(azurite), fresh_container()
    archive_evidence(check_document(), container=container, blob_service=blobs)
    other = {**check_document(), "run_id": str(uuid.uuid4())}
    archive_evidence(other, container=container, blob_service=blobs)
    listed = sorted(blob.name for blob in blobs.get_container_client(container).list_blobs())
    assert len(listed) == 6 and all(name.startswith(PREFIX) for name in listed)


def test_wrong_account_key_is_a_clear_error_without_the_key(azurite):
    wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk="
    blobs = blob_service_from_env({"AzureWebJobsStorage": connection_string(azurite.port, wrong_key)}, retry_total=0)
    with pytest.raises(ArchiveError, match=r"HTTP 403 AuthorizationFailure \(refused: a wrong account key") as caught:
        archive_evidence(check_document(), container=fresh_container(), blob_service=blobs)
    assert f"127.0.0.1:{azurite.port}" in str(caught.value)
    no_secret_in(caught.value, wrong_key, DEV_KEY)


def test_storage_down_is_a_clear_error_without_secrets():
    port = free_port()  # nothing listens there: Azurite (or the account) is down
    blobs = blob_service_from_env({"AzureWebJobsStorage": connection_string(port)}, retry_total=0)
    with pytest.raises(ArchiveError) as caught:
        archive_evidence(check_document(), container="evidence", blob_service=blobs)
    message = str(caught.value)
    assert "unreachable" in message and "Connection refused" in message and f"127.0.0.1:{port}" in message
    assert "is the storage account (or Azurite) running?" in message
    no_secret_in(caught.value, DEV_KEY)


def test_a_sas_token_never_appears_in_an_error():
    signature = "c2VjcmV0U2lnbmF0dXJlVmFsdWU%3D"
    sas = f"sv=2024-11-04&ss=b&srt=co&sp=rwc&se=2030-01-01T00:00:00Z&sig={signature}"
    setting = f"BlobEndpoint=http://127.0.0.1:{free_port()}/{'devstoreaccount1'};SharedAccessSignature={sas}"
    blobs = blob_service_from_env({"AzureWebJobsStorage": setting}, retry_total=0)
    with pytest.raises(ArchiveError) as caught:
        archive_evidence(check_document(), container="evidence", blob_service=blobs)
    no_secret_in(caught.value, signature, "sig=")


# ------------------------------------------------------------------------------------------------ paths and settings


def test_blob_path_uses_the_utc_date_of_the_start():
    document = {"tenant_id": "t-1", "run_id": "r-1", "started_at": "2026-01-01T00:30:00+02:00"}
    assert blob_prefix(document) == "t-1/2025/12/31/r-1"


@pytest.mark.parametrize(
    "change",
    [
        {"tenant_id": "../other"},
        {"run_id": "a/b"},
        {"run_id": None},
        {"started_at": "yesterday"},
        {"started_at": "2026-11-28T06:00:00"},
    ],
)
def test_unusable_documents_are_refused_before_anything_is_sent(change):
    document = {**check_document(), **change}
    with pytest.raises(ArchiveError, match="cannot archive"):
        blob_prefix(document)


def test_no_storage_setting_means_no_archive():
    assert blob_service_from_env({}) is None
    assert blob_service_from_env({"AzureWebJobsStorage": "  "}) is None


def test_development_storage_shortcut():
    blobs = blob_service_from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert blobs.url.startswith("http://127.0.0.1:10000/devstoreaccount1")


class FakeCredential:
    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        FakeCredential.made.append(kwargs)

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:  # pragma: no cover - never called: nothing is sent
        raise AssertionError("no request expected")


@pytest.mark.parametrize(
    ("settings", "url", "credential"),
    [
        (
            {
                "AzureWebJobsStorage__accountName": "stmag01",
                "AzureWebJobsStorage__credential": "managedidentity",
                "AzureWebJobsStorage__clientId": "11111111-2222-3333-4444-555555555555",
            },
            "https://stmag01.blob.core.windows.net/",
            {"client_id": "11111111-2222-3333-4444-555555555555"},
        ),
        (
            {
                "AzureWebJobsStorage__blobServiceUri": "https://stmag01.blob.core.usgovcloudapi.net",
                "AzureWebJobsStorage__credential": "managedidentity",
            },
            "https://stmag01.blob.core.usgovcloudapi.net/",
            {},
        ),
        ({"AzureWebJobsStorage__accountName": "stmag01"}, "https://stmag01.blob.core.windows.net/", {}),
    ],
)
def test_identity_based_settings_use_the_managed_identity(monkeypatch, settings, url, credential):
    import azure.identity

    FakeCredential.made = []
    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential", FakeCredential)
    blobs = blob_service_from_env(settings)
    assert blobs.url == url
    assert isinstance(blobs.credential, FakeCredential) and FakeCredential.made == [credential]


@pytest.mark.parametrize(
    ("settings", "named", "hidden"),
    [
        ({"AzureWebJobsStorage": "not-a-connection-string-s3cr3tvalue"}, "AzureWebJobsStorage ", "s3cr3tvalue"),
        (
            {"AzureWebJobsStorage__accountName": "x", "AzureWebJobsStorage__credential": "connectionstring"},
            "AzureWebJobsStorage__credential",
            None,
        ),
        ({"AzureWebJobsStorage__accountName": "Not_An_Account"}, "AzureWebJobsStorage__accountName", None),
        ({"AzureWebJobsStorage__blobServiceUri": "http://storage.example.org"}, "must use https", None),
        (
            {"AzureWebJobsStorage__blobServiceUri": "https://st.blob.core.windows.net/?sig=s3cr3tsig"},
            "AzureWebJobsStorage__blobServiceUri",
            "s3cr3tsig",
        ),
    ],
)
def test_bad_settings_are_named_never_echoed(settings, named, hidden):
    with pytest.raises(ArchiveError) as caught:
        blob_service_from_env(settings)
    assert named in str(caught.value)
    if hidden:
        no_secret_in(caught.value, hidden)


def test_container_setting():
    assert container_from_env({}) == "evidence"
    assert container_from_env({"EVIDENCE_CONTAINER": "audit-evidence"}) == "audit-evidence"
    for bad in ("Evidence", "ev", "ev--x", "-ev", "ev_x", "e" * 64):
        with pytest.raises(ArchiveError, match="EVIDENCE_CONTAINER"):
            container_from_env({"EVIDENCE_CONTAINER": bad})


def test_blob_library_is_imported_lazily():
    probe = (
        "import sys, shared.evidence.archive; "
        "print('azure.storage.blob' in sys.modules, 'azure.identity' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_a_document_that_is_not_plain_json_is_refused():
    blobs = blob_service_from_env({"AzureWebJobsStorage": connection_string(free_port())}, retry_total=0)
    with pytest.raises(ArchiveError, match="not plain JSON"):
        archive_evidence({**check_document(), "requests_sent": float("nan")}, container="evidence", blob_service=blobs)
