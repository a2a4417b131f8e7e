"""The JSON form of an invocation between the host and a worker process (``--workers N``).

What crosses: the trigger value (an HTTP request, an activity's input, a timer request) and the
function's result (an HTTP response, an activity's output) or its exception (type name,
message, traceback). Orchestrator episodes run in the host process and never cross.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

from .errors import DevhostError

HTTP, ACTIVITY, TIMER = "httpTrigger", "activityTrigger", "timerTrigger"
KINDS = (HTTP, ACTIVITY, TIMER)


class RemoteFunctionError(DevhostError):
    """A function raised in a worker process. Its class name is the original exception's (so
    ``Type: message`` reads the same), and ``remote_traceback`` is the worker's traceback."""

    remote_traceback = ""


def encode_trigger(kind: str, value: Any) -> Any:
    if kind == HTTP:
        assert isinstance(value, func.HttpRequest)
        return {"method": value.method, "url": value.url, "headers": dict(value.headers),
                "params": dict(value.params), "route_params": dict(value.route_params),
                "body": base64.b64encode(value.get_body()).decode()}
    if kind == TIMER:
        return {"past_due": bool(value.past_due)}
    return value  # an activity's input: JSON already


def decode_trigger(kind: str, data: Any) -> Any:
    if kind == HTTP:
        return func.HttpRequest(method=data["method"], url=data["url"], headers=data["headers"],
                                params=data["params"], route_params=data["route_params"],
                                body=base64.b64decode(data["body"]))
    if kind == TIMER:
        return TimerRequest(past_due=data["past_due"])
    return data


def encode_result(kind: str, result: Any) -> Any:
    if kind != HTTP:
        return {"json": json.dumps(result)}
    if isinstance(result, func.HttpResponse):
        return {"status": result.status_code, "headers": dict(result.headers),
                "mimetype": result.mimetype, "charset": result.charset,
                "body": base64.b64encode(result.get_body()).decode()}
    if isinstance(result, str | bytes):
        raw = result if isinstance(result, bytes) else result.encode()
        return {"text": base64.b64encode(raw).decode()}
    if result is None:
        return {"none": True}
    return {"unsupported": type(result).__name__}


def decode_result(kind: str, data: dict[str, Any]) -> Any:
    if kind != HTTP:
        return json.loads(data["json"])
    if "status" in data:
        return func.HttpResponse(body=base64.b64decode(data["body"]),
                                 status_code=data["status"], headers=data["headers"],
                                 mimetype=data["mimetype"], charset=data["charset"])
    if "text" in data:
        return base64.b64decode(data["text"])
    if "none" in data:
        return None
    return object()  # (the HTTP layer answers 500 for a type it cannot send)


def encode_error(exc: BaseException, traceback_text: str) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc), "traceback": traceback_text}


def decode_error(data: dict[str, str]) -> RemoteFunctionError:
    kind = type(data["type"], (RemoteFunctionError,), {})
    error: RemoteFunctionError = kind(data["message"])
    error.remote_traceback = data.get("traceback", "")
    return error
