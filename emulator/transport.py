"""An in-process transport for requests: the emulator answers a PreparedRequest without a socket.

Like httpx's MockTransport, but the "mock" is the emulator itself: `EmulatorTransport` hands the request to the
same `server.handle` the socket listeners use, so routing, faults, paging and the request log are the code a
socket test exercises. Mount it on a client's session (`emu.mount(session)`) and that client needs neither TLS
nor a port; everything else (token endpoints, other processes) still talks to the real listeners.

What it does not emulate: TLS (certificate checks happen only on the socket path) and connection reuse. The
fault actions that need a connection are mapped to what requests raises on a real one: `hang` and a `delay`
longer than the read timeout raise ReadTimeout once that timeout has passed; `reset` sends half the body and
then breaks the read, as a TCP RST does.
"""

from __future__ import annotations

import http
import io
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from requests import PreparedRequest, Response
from requests.adapters import BaseAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPResponse
from urllib3.exceptions import ProtocolError

from . import wire
from .server import handle

if TYPE_CHECKING:
    from .emulator import Emulator


class _ResetBody(io.RawIOBase):
    """A body that gives its bytes, then fails the next read like a connection reset by the peer."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._data:
            raise ConnectionResetError(104, "Connection reset by peer")
        size = min(len(buffer), len(self._data))
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


def _body_bytes(body: bytes | str | Iterable[bytes] | None) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else data
    return b"".join(chunk.encode("utf-8") if isinstance(chunk, str) else chunk for chunk in body)


def _read_timeout(timeout: float | tuple[float | None, float | None] | None) -> float | None:
    if isinstance(timeout, tuple):
        return timeout[1]
    return timeout


class EmulatorTransport(BaseAdapter):
    """A requests transport adapter that answers from an Emulator in the same process."""

    def __init__(self, emu: Emulator) -> None:
        super().__init__()
        self.emu = emu

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        url = request.url or ""
        parts = urlsplit(url)
        try:
            listener = self.emu.listener_for(url)
        except ValueError as exc:
            raise RequestsConnectionError(str(exc), request=request) from None
        body = _body_bytes(request.body)  # type: ignore[arg-type]
        # What urllib3 would add on the wire: the Host header, and Content-Length for a body.
        headers = [("Host", parts.netloc), *request.headers.items()]
        if body and "content-length" not in {name.lower() for name, _ in headers}:
            headers.append(("Content-Length", str(len(body))))
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        answer = self._answer(
            self.emu.dispatch_for(listener), listener, request, target, headers, body, _read_timeout(timeout)
        )
        return self._response(request, answer)

    def close(self) -> None:
        """Nothing to release: there is no connection pool."""

    def _answer(
        self,
        dispatch: Any,
        listener: str,
        request: PreparedRequest,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        read_timeout: float | None,
    ) -> wire.Response:
        """Run the handler in a thread, so a `delay` fault longer than the read timeout times out as it would."""
        done: list[wire.Response | BaseException] = []

        def run() -> None:
            try:
                done.append(handle(dispatch, listener, request.method or "GET", target, headers, body))
            except BaseException as exc:  # handed to the caller's thread
                done.append(exc)

        worker = threading.Thread(target=run, name=f"emulator-transport-{listener}", daemon=True)
        worker.start()
        worker.join(read_timeout)
        if not done:
            raise ReadTimeout(f"emulator ({listener}) did not answer within {read_timeout} s", request=request)
        answer = done[0]
        if isinstance(answer, BaseException):
            raise answer
        if answer.action == "hang":
            hang = answer.hang_seconds  # None: until the emulator stops
            if read_timeout is not None and (hang is None or hang >= read_timeout):
                if not self.emu.wait(read_timeout):
                    raise ReadTimeout(f"emulator ({listener}) did not answer within {read_timeout} s", request=request)
            else:
                self.emu.wait(hang)
            raise RequestsConnectionError(
                ProtocolError(
                    "Connection aborted.",
                    ConnectionResetError(104, "the emulator closed the connection without an answer"),
                ),
                request=request,
            )
        return answer

    def _response(self, request: PreparedRequest, answer: wire.Response) -> Response:
        """A real requests.Response over a urllib3 HTTPResponse, with the headers the socket listener sends."""
        headers = {"Content-Type": "application/json", **answer.headers, "Content-Length": str(len(answer.body))}
        if request.method == "HEAD":
            stream: io.IOBase = io.BytesIO(b"")
        elif answer.action == "reset":
            stream = io.BufferedReader(_ResetBody(answer.body[: max(0, len(answer.body) // 2)]))
        else:
            stream = io.BytesIO(answer.body)
        try:
            reason = http.HTTPStatus(answer.status).phrase
        except ValueError:
            reason = ""
        raw = HTTPResponse(
            body=stream,
            headers=headers,
            status=answer.status,
            reason=reason,
            preload_content=False,
            decode_content=False,
            request_method=request.method,
            request_url=request.url,
        )
        response = Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(raw.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = raw
        response.reason = reason
        response.url = request.url or ""
        response.request = request
        response.connection = self
        return response
