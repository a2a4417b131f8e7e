"""Test helpers for the client: a transport that records what went over the wire, and canned
answers for transport-level unit tests (httpx.MockTransport)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

UNKNOWN_ID = "j20261122T1400-s001-0000-1a2b3c4d5e6f7a8b"


@dataclass
class Recorder:
    """Wraps the real HTTP transport and records (method, path, status) of every exchange."""

    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def sync(self) -> httpx.BaseTransport:
        inner = httpx.HTTPTransport()
        recorder = self

        class Recording(httpx.BaseTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                response = inner.handle_request(request)
                recorder.calls.append((request.method, request.url.path, response.status_code))
                return response

            def close(self) -> None:
                inner.close()

        return Recording()

    def asynchronous(self) -> httpx.AsyncBaseTransport:
        inner = httpx.AsyncHTTPTransport()
        recorder = self

        class Recording(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                response = await inner.handle_async_request(request)
                recorder.calls.append((request.method, request.url.path, response.status_code))
                return response

            async def aclose(self) -> None:
                await inner.aclose()

        return Recording()

    def statuses(self, method: str, path_prefix: str = "") -> list[int]:
        return [s for m, p, s in self.calls if m == method and p.startswith(path_prefix)]


def job_json(**overrides: Any) -> dict[str, Any]:
    """A job as GET /api/jobs/{id} answers it."""
    job: dict[str, Any] = {
        "id": UNKNOWN_ID, "handler": "echo", "status": "scheduled",
        "due_at": "2026-11-22T14:05:00Z", "created_at": "2026-11-22T14:00:00Z",
        "updated_at": None, "started_at": None, "finished_at": None, "attempts": 0,
        "max_attempts": 5, "runs": 0, "payload": {"a": 1}, "result": None, "error": None,
        "compensation": None, "idempotency_key": None,
        "retry": {"max_attempts": 5, "base_delay": 2.0, "max_delay": 300.0, "jitter": 0.2},
        "recurrence": None, "notify": None, "cancel_reason": None, "labels": {},
    }
    job.update(overrides)
    return job


def problem_response(status: int, title: str = "Problem", detail: str = "it went wrong",
                     field: str | None = None, headers: dict[str, str] | None = None
                     ) -> httpx.Response:
    body: dict[str, Any] = {"type": "https://jobs.example/problems/x", "title": title,
                            "status": status, "detail": detail}
    if field:
        body["field"] = field
    return httpx.Response(status, content=json.dumps(body).encode(),
                          headers={"content-type": "application/problem+json",
                                   **(headers or {})})
