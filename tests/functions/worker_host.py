"""Plays the Functions host's side for the real Python worker (`azure_functions_runtime`), in a fresh process.

In Azure the .NET host talks gRPC to a proxy worker, which hands each message to the runtime's public handlers
(worker_init_request, functions_metadata_request, function_load_request, invocation_request) together with its
generated protobuf module. Neither the host nor the proxy worker is a package we can install, so the message
types the handlers read and build are written here (`protos`): plain objects with the contract's field names,
defaults (an unset sub-message is empty) and oneof groups. Everything else (indexing function_app.py, building the
function metadata, checking bindings against the signatures, converting bindings, the thread pool, the worker's own
Azure Monitor set-up) is the installed runtime's code. Usage:
       python -m tests.functions.worker_host index
       python -m tests.functions.worker_host timer [--past-due]
       python -m tests.functions.worker_host watch [--past-due]
       python -m tests.functions.worker_host http METHOD BODY_FILE HEADERS_JSON
       python -m tests.functions.worker_host dispatch | watch-dispatch          (the fan-out timers)
       python -m tests.functions.worker_host queue FUNCTION BODY_FILE DEQUEUE_COUNT  (a queue-triggered function)
Prints one JSON line: what the worker answered to each message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parents[2]


class Message:
    """A message of the host/worker contract: declared fields only, unset fields take their proto3 default."""

    FIELDS: ClassVar[dict[str, Any]] = {}  # field name -> factory of its default
    ONEOFS: ClassVar[dict[str, tuple[str, ...]]] = {}  # oneof group -> its fields

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        for name, default in self.FIELDS.items():
            value = values.get(name)
            setattr(self, name, default() if value is None else value)
        self._set = {name for name, value in values.items() if value is not None}

    def WhichOneof(self, group: str) -> str | None:  # the protobuf method name the runtime calls
        return next((name for name in self.ONEOFS[group] if name in self._set), None)

    def to_json(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in self.FIELDS if name in self._set}


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_json()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _message(
    name: str, fields: dict[str, Any], oneofs: dict[str, tuple[str, ...]] | None = None, **constants: Any
) -> type[Message]:
    return type(name, (Message,), {"FIELDS": fields, "ONEOFS": oneofs or {}, **constants})


def _str() -> str:
    return ""


def _int() -> int:
    return 0


def _bool() -> bool:
    return False


RpcException = _message(
    "RpcException", {"source": _str, "stack_trace": _str, "message": _str, "is_user_exception": _bool, "type": _str}
)
StatusResult = _message(
    "StatusResult",
    {"status": _int, "result": _str, "exception": RpcException, "logs": list},
    Failure=0,
    Success=1,
    Cancelled=2,
)
BindingInfo = _message(
    "BindingInfo",
    {"type": _str, "data_type": _int, "direction": _int},
    undefined=0,
    string=1,
    binary=2,
    stream=3,
    out=1,
    inout=2,
)  # `in` (0) is a keyword
TYPED_DATA_KINDS = (
    "string",
    "json",
    "bytes",
    "stream",
    "http",
    "int",
    "double",
    "collection_bytes",
    "collection_string",
    "collection_double",
    "collection_sint64",
    "model_binding_data",
    "collection_model_binding_data",
)
TypedData = _message("TypedData", dict.fromkeys(TYPED_DATA_KINDS, lambda: None), {"data": TYPED_DATA_KINDS})
SameSite = SimpleNamespace(Lax=1, Strict=2, ExplicitNone=3, **{"None": 0})
RpcHttpCookie = _message(
    "RpcHttpCookie",
    dict.fromkeys(
        ("name", "value", "domain", "path", "expires", "secure", "http_only", "same_site", "max_age"), lambda: None
    ),
    SameSite=SameSite,
)
RpcHttp = _message(
    "RpcHttp",
    {
        "method": _str,
        "url": _str,
        "headers": dict,
        "body": TypedData,
        "params": dict,
        "status_code": _str,
        "query": dict,
        "enable_content_negotiation": _bool,
        "raw_body": TypedData,
        "cookies": list,
        "nullable_headers": dict,
        "nullable_params": dict,
        "nullable_query": dict,
        "identities": list,
    },
)
ParameterBinding = _message(
    "ParameterBinding",
    {"name": _str, "data": TypedData, "rpc_shared_memory": lambda: None},
    {"rpc_data": ("data", "rpc_shared_memory")},
)
RpcTraceContext = _message("RpcTraceContext", {"trace_parent": _str, "trace_state": _str, "attributes": dict})
RetryContext = _message("RetryContext", {"retry_count": _int, "max_retry_count": _int, "exception": RpcException})
RpcRetryOptions = _message(
    "RpcRetryOptions",
    dict.fromkeys(
        ("max_retry_count", "delay_interval", "minimum_interval", "maximum_interval", "retry_strategy"), lambda: None
    ),
)
RpcFunctionMetadata = _message(
    "RpcFunctionMetadata",
    {
        "name": _str,
        "directory": _str,
        "script_file": _str,
        "entry_point": _str,
        "bindings": dict,
        "is_proxy": _bool,
        "status": StatusResult,
        "language": _str,
        "raw_bindings": list,
        "function_id": _str,
        "managed_dependency_enabled": _bool,
        "retry_options": lambda: None,
        "properties": dict,
    },
)
WorkerMetadata = _message(
    "WorkerMetadata",
    {
        "runtime_name": _str,
        "runtime_version": _str,
        "worker_version": _str,
        "worker_bitness": _str,
        "custom_properties": dict,
    },
)
WorkerInitRequest = _message(
    "WorkerInitRequest",
    {
        "host_version": _str,
        "capabilities": dict,
        "log_categories": dict,
        "worker_directory": _str,
        "function_app_directory": _str,
    },
)
WorkerInitResponse = _message(
    "WorkerInitResponse",
    {"worker_version": _str, "capabilities": dict, "result": StatusResult, "worker_metadata": WorkerMetadata},
)
FunctionMetadataResponse = _message(
    "FunctionMetadataResponse",
    {"function_metadata_results": list, "result": StatusResult, "use_default_metadata_indexing": _bool},
)
FunctionLoadRequest = _message(
    "FunctionLoadRequest", {"function_id": _str, "metadata": RpcFunctionMetadata, "managed_dependency_enabled": _bool}
)
FunctionLoadResponse = _message(
    "FunctionLoadResponse", {"function_id": _str, "result": StatusResult, "is_dependency_downloaded": _bool}
)
InvocationRequest = _message(
    "InvocationRequest",
    {
        "invocation_id": _str,
        "function_id": _str,
        "input_data": list,
        "trigger_metadata": dict,
        "trace_context": RpcTraceContext,
        "retry_context": RetryContext,
    },
)
InvocationResponse = _message(
    "InvocationResponse",
    {"invocation_id": _str, "output_data": list, "return_value": TypedData, "result": StatusResult},
)
StreamingMessage = _message(
    "StreamingMessage",
    {
        "request_id": _str,
        "worker_init_request": WorkerInitRequest,
        "function_load_request": FunctionLoadRequest,
        "invocation_request": InvocationRequest,
    },
)

# The module the proxy worker passes to the runtime as request.properties["protos"].
protos = SimpleNamespace(
    **{
        name: value
        for name, value in globals().items()
        if isinstance(value, type) and issubclass(value, Message) and value is not Message
    }
)


@dataclass
class WorkerRequest:
    """What the proxy worker hands to the runtime's handlers: the message's name, the message, and properties."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=lambda: {"host": "127.0.0.1", "protos": protos})


async def converse(argv: list[str]) -> dict[str, Any]:
    import azure_functions_runtime as worker

    worker.start_threadpool_executor()
    try:
        init = await worker.worker_init_request(
            WorkerRequest(
                "worker_init_request",
                StreamingMessage(
                    worker_init_request=WorkerInitRequest(host_version="4.0.0", function_app_directory=str(REPO))
                ),
            )
        )
        answer: dict[str, Any] = {"init": init.to_json()}
        metadata = await worker.functions_metadata_request(WorkerRequest("functions_metadata_request", None))
        functions = {fn.name: fn for fn in metadata.function_metadata_results or []}
        answer["metadata"] = metadata.to_json()
        answer["load"] = {}
        for name, fn in functions.items():
            loaded = await worker.function_load_request(
                WorkerRequest(
                    "function_load_request",
                    StreamingMessage(
                        function_load_request=FunctionLoadRequest(function_id=fn.function_id, metadata=fn)
                    ),
                )
            )
            answer["load"][name] = loaded.to_json()
        if argv[0] != "index":
            timers = {
                "timer": "daily_audit_check",
                "watch": "activity_watch",
                "dispatch": "daily_audit_dispatch",
                "watch-dispatch": "activity_watch_dispatch",
            }
            metadata_in: dict[str, Any] = {}
            if argv[0] in timers:
                name, parameter = timers[argv[0]], timer_binding(argv)
            elif argv[0] == "queue":
                name, parameter, metadata_in = argv[1], *queue_binding(argv)
            else:
                name, parameter = "remediate", http_binding(argv)
            invocation = await worker.invocation_request(
                WorkerRequest(
                    "invocation_request",
                    StreamingMessage(
                        invocation_request=InvocationRequest(
                            invocation_id=str(uuid.uuid4()),
                            function_id=functions[name].function_id,
                            input_data=[parameter],
                            trigger_metadata=metadata_in,
                            trace_context=RpcTraceContext(
                                trace_parent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
                            ),
                            retry_context=RetryContext(retry_count=0, max_retry_count=0),
                        )
                    ),
                )
            )
            answer["invocation"] = invocation.to_json()
        return answer
    finally:
        worker.stop_threadpool_executor()


def timer_binding(argv: list[str]) -> Message:
    """The timer trigger's payload as the host sends it: JSON with the schedule status and IsPastDue."""
    payload = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": None, "IsPastDue": "--past-due" in argv}
    return ParameterBinding(name="timer", data=TypedData(json=json.dumps(payload)))


def queue_binding(argv: list[str]) -> tuple[Message, dict[str, Any]]:
    """A queue trigger's message as the host delivers it: the decoded text, and the message's metadata (the host
    sends DequeueCount as JSON, the ids as strings)."""
    body, dequeue_count = Path(argv[2]).read_text(), int(argv[3])
    metadata = {
        "Id": TypedData(string=str(uuid.uuid4())),
        "DequeueCount": TypedData(json=json.dumps(dequeue_count)),
        "PopReceipt": TypedData(string="AgAAAAMAAAAAAAAA"),
        "InsertionTime": TypedData(json=json.dumps("2026-01-05T06:00:00+00:00")),
    }
    return ParameterBinding(name="msg", data=TypedData(string=body)), metadata


def http_binding(argv: list[str]) -> Message:
    method, body, headers = argv[1], Path(argv[2]).read_bytes(), json.loads(argv[3])
    return ParameterBinding(
        name="req",
        data=TypedData(
            http=RpcHttp(
                method=method,
                url="https://mag.azurewebsites.net/api/remediate",
                headers=headers,
                body=TypedData(bytes=body),
                params={},
                query={},
            )
        ),
    )


def main(argv: list[str]) -> int:
    # The proxy worker forwards log records to the host's log stream; stderr stands in for it here.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    sys.path.insert(0, str(REPO))  # the host starts the worker in the app's directory
    print(json.dumps(asyncio.run(converse(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
