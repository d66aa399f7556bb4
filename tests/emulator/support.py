"""Helpers for the emulator's own tests: a raw HTTP client that speaks InvokeCommand with a real token."""

from __future__ import annotations

from typing import Any

import requests

EXO_SCOPE = "https://outlook.office365.com/.default"
TENANT_ID = "0b5c1c1e-1111-2222-3333-444455556666"
MORE_RESULTS = (
    "There are more results available than are currently displayed. "
    "To view them, increase the value for the ResultSize parameter."
)
UAL_ANCHOR = f"APP:SystemMailbox{{8cc370d3-822a-4ab8-a926-bb94bd0641a9}}@{TENANT_ID}"


def secret_token(emu: Any, scope: str = EXO_SCOPE) -> str:
    """A token from the emulated token endpoint (client secret), fetched over real TLS."""
    response = requests.post(
        f"{emu.authority_url}/{emu.tenant_id}/oauth2/v2.0/token",
        verify=emu.ca_bundle,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "scope": scope,
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


class Exo:
    """InvokeCommand over requests; `verify=` is passed per call because the machine sets REQUESTS_CA_BUNDLE."""

    def __init__(self, emu: Any, token: str | None = None) -> None:
        self.emu = emu
        self.token = token or secret_token(emu)
        self.session = requests.Session()

    def url(self, select: str | None = None) -> str:
        base = f"{self.emu.exchange_url}/adminapi/beta/{self.emu.tenant_id}/InvokeCommand"
        return f"{base}?$select={select}" if select else base

    def post(
        self,
        cmdlet: str,
        parameters: Any = None,
        *,
        select: str | None = None,
        url: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        timeout: float = 10,
    ) -> requests.Response:
        payload = (
            body
            if body is not None
            else {"CmdletInput": {"CmdletName": cmdlet, "Parameters": {} if parameters is None else parameters}}
        )
        all_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        # Streamed, then read at once: raw when labelled gzip (the real 403 is NULs labelled so), else decoded.
        response = self.session.post(
            url or self.url(select),
            json=payload,
            headers=all_headers,
            verify=self.emu.ca_bundle,
            timeout=timeout,
            stream=True,
            allow_redirects=False,  # a redirect is an answer to look at, as the client sees it
        )
        if "gzip" in response.headers.get("Content-Encoding", "").lower():
            raw_body(response)
        else:
            response.content  # noqa: B018 - reads the body now, as an unstreamed request would
        return response

    def ok(self, cmdlet: str, parameters: Any = None, **kwargs: Any) -> dict[str, Any]:
        response = self.post(cmdlet, parameters, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def pages(
        self, cmdlet: str, parameters: Any = None, *, select: str | None = None, headers: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Follow @odata.nextLink by re-POSTing the same body, as a real client does."""
        url: str | None = self.url(select)
        pages = []
        while url:
            page = self.ok(cmdlet, parameters, url=url, headers=headers)
            pages.append(page)
            url = page.get("@odata.nextLink")
        return pages

    def error_text(self, response: requests.Response) -> str:
        """The `ErrorId|Type|Text` detail of an error envelope (real shapes without `details`: `|Type|Text` from
        `innererror.internalexception`)."""
        error = response.json()["error"]
        if error.get("details"):
            return error["details"][0]["message"]
        internal = error["innererror"]["internalexception"]
        return f"|{internal['type']}|{internal['message']}"


def raw_body(response: requests.Response) -> bytes:
    """The body as sent, without the Content-Encoding decoding requests would do (and fail at, for the 403);
    `.json()` and `.content` keep working afterwards."""
    if not response._content_consumed:  # type: ignore[attr-defined]
        response._content = response.raw.read(decode_content=False)
        response._content_consumed = True  # type: ignore[attr-defined]
    return response.content  # as sent: Exo.post decodes only bodies that are not labelled gzip
