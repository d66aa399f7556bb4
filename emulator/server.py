"""Threaded HTTP(S) listeners on 127.0.0.1: read a request, hand it to a dispatcher, write its answer.

TLS handshakes run in the worker thread (not in accept), idle keep-alive connections time out, and stop()
closes every open connection, so neither a slow client nor a `hang` fault can keep the process up.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .wire import Request, Response

log = logging.getLogger("emulator")

Dispatch = Callable[[Request], Response]
IDLE_TIMEOUT = 30.0


def handle(
    dispatch: Dispatch, listener: str, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
) -> Response:
    """One request, as read off the wire, to its answer: the single entry point of every listener.

    The socket listeners below and the in-process transport (emulator/transport.py) both come through here, so
    routing, faults, paging and the request log are the same code whichever way a test talks to the emulator.
    `target` is the request line's target (path and query); header names are matched case-insensitively.
    """
    parts = urlsplit(target)
    lowered = {name.lower(): value for name, value in headers}
    request = Request(
        method=method,
        path=unquote(parts.path),
        raw_query=parts.query,
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=lowered,
        raw_body=body,
        host=lowered.get("host", ""),
        listener=listener,
    )
    return dispatch(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: 100 pages over one connection
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True  # headers and body go out in separate writes; Nagle + delayed ACK = 40 ms
    server: Listener

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.server.name, format % args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        response = handle(
            self.server.dispatch, self.server.name, self.command, self.path, self.headers.items(), self._read_body()
        )
        if response.action == "hang":
            self.server.wait(response.hang_seconds)
            self.close_connection = True
            return
        self.send_response(response.status)
        headers = {"Content-Type": "application/json", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if response.action == "reset":
            self.end_headers()
            self.wfile.write(response.body[: max(0, len(response.body) // 2)])
            self.wfile.flush()
            # SO_LINGER 0 turns close() into a TCP RST: the client sees a connection reset mid-body.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


class Listener(ThreadingHTTPServer):
    """One listener: a name ("exchange", "foreign", "msi", "ingestion"), a dispatcher and optional TLS."""

    daemon_threads = True
    block_on_close = False  # stop() must not wait for a handler stuck in a hang fault

    def __init__(
        self, name: str, dispatch: Dispatch, wait: Callable[[float | None], object], tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.dispatch = dispatch
        self.wait = wait
        self.tls = tls
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn = request
        try:
            conn.settimeout(IDLE_TIMEOUT)
            if self.tls is not None:
                conn = self.tls.wrap_socket(request, server_side=True)
            with self._open_lock:
                self._open.add(conn)
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ssl.SSLError) as exc:
            log.debug("%s: connection ended: %s", self.name, exc)
        finally:
            with self._open_lock:
                self._open.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("%s: error serving %s", self.name, client_address, exc_info=True)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, name=f"emulator-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, so only when it runs
            self.shutdown()
        self.server_close()
        with self._open_lock:
            connections = list(self._open)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
