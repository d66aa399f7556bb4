"""Azure Queue Storage on Azurite, spoken over its REST API: what the Functions host does with the fan-out queues.

No queue SDK is a dependency of the app (the host's bindings move the messages), so the tests talk REST with
requests and an account SAS made by azure-storage-blob (already pinned). `QueueHost` plays the host's part: it
enqueues a function's output binding messages (base64, as the host encodes them), delivers each message to a
queue-triggered function, deletes it on success, makes it visible again on failure, and moves it to
`<queue>-poison` once it has been delivered `max_dequeue_count` times, as the host's queue listener does.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import requests
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from tests.support.report_tools import DEV_ACCOUNT, DEV_KEY


@dataclass
class Message:
    id: str
    pop_receipt: str
    dequeue_count: int
    text: str  # decoded


class Queues:
    """The queue service of one Azurite, by REST with an account SAS."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/{DEV_ACCOUNT}"
        self.sas = generate_account_sas(
            DEV_ACCOUNT,
            DEV_KEY,
            ResourceTypes(service=True, container=True, object=True),
            AccountSasPermissions(
                read=True, write=True, delete=True, list=True, add=True, create=True, update=True, process=True
            ),
            datetime.now(UTC) + timedelta(hours=2),
            services="q",
        )
        self.session = requests.Session()

    def _call(self, method: str, path: str, body: str | None = None, **query: Any) -> requests.Response:
        params = "&".join([self.sas, *(f"{key}={value}" for key, value in query.items())])
        response = self.session.request(method, f"{self.base}/{path}?{params}", data=body, timeout=10)
        response.raise_for_status()
        return response

    def create(self, queue: str) -> None:
        self._call("PUT", queue)

    def put(self, queue: str, text: str) -> None:
        encoded = base64.b64encode(text.encode()).decode()  # host.json messageEncoding: base64
        self._call(
            "POST", f"{queue}/messages", f"<QueueMessage><MessageText>{escape(encoded)}</MessageText></QueueMessage>"
        )

    def get(self, queue: str, visibility_seconds: int = 30) -> Message | None:
        root = ElementTree.fromstring(
            self._call("GET", f"{queue}/messages", numofmessages=1, visibilitytimeout=visibility_seconds).content
        )
        found = root.find("QueueMessage")
        if found is None:
            return None
        return Message(
            id=found.findtext("MessageId", ""),
            pop_receipt=found.findtext("PopReceipt", ""),
            dequeue_count=int(found.findtext("DequeueCount", "0")),
            text=base64.b64decode(found.findtext("MessageText", "")).decode(),
        )

    def delete(self, queue: str, message: Message) -> None:
        self._call("DELETE", f"{queue}/messages/{message.id}", popreceipt=requests.utils.quote(message.pop_receipt))

    def release(self, queue: str, message: Message) -> None:
        """Visible again at once (the host's visibilityTimeout, 0 here: no timed tests)."""
        self._call(
            "PUT",
            f"{queue}/messages/{message.id}",
            popreceipt=requests.utils.quote(message.pop_receipt),
            visibilitytimeout=0,
        )

    def texts(self, queue: str) -> list[str]:
        root = ElementTree.fromstring(self._call("GET", f"{queue}/messages", peekonly="true", numofmessages=32).content)
        return [base64.b64decode(m.findtext("MessageText", "")).decode() for m in root.findall("QueueMessage")]


class QueueHost:
    """The Functions host's queue listener, one message at a time (batchSize 1), against real Azurite queues."""

    def __init__(self, queues: Queues, queue: str, max_dequeue_count: int) -> None:
        self.queues, self.queue, self.max = queues, queue, max_dequeue_count
        self.poison = f"{queue}-poison"
        queues.create(queue)
        queues.create(self.poison)

    def drain(self, invoke: Callable[[str, int], bool], limit: int = 50) -> list[tuple[str, int, bool]]:
        """Deliver until the queue is empty: (message text, dequeue count, succeeded) per delivery."""
        deliveries = []
        for _ in range(limit):
            message = self.queues.get(self.queue)
            if message is None:
                return deliveries
            ok = invoke(message.text, message.dequeue_count)
            deliveries.append((message.text, message.dequeue_count, ok))
            if ok:
                self.queues.delete(self.queue, message)
            elif message.dequeue_count >= self.max:
                self.queues.put(self.poison, message.text)
                self.queues.delete(self.queue, message)
            else:
                self.queues.release(self.queue, message)
        raise AssertionError(f"{self.queue} was not drained in {limit} deliveries")
