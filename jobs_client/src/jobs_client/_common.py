"""What both clients share besides the flows: settings from arguments or the environment, and
building the request models from keyword arguments."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from ._codec import decode
from .models import JobUpdate, NewJob, Recurrence, RetryPolicy

DEFAULT_URL = "http://127.0.0.1:7071"
LabelFilter = str | Mapping[str, str | None] | None
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "jobs-client/0.1"
KEY_TEXT = re.compile(r"[!-~]+")  # what a header value can carry (function keys are ASCII)


class InvalidKey(ValueError):
    """A function key a header cannot carry (its text is never put in the message)."""


def api_base(url: str) -> str:
    """``http://host:7071`` or ``http://host:7071/api`` -> ``http://host:7071/api/``."""
    base = url.rstrip("/")
    if not base.endswith("/api"):
        base += "/api"
    return base + "/"


def settings_from_env(url: str | None, key: str | None) -> tuple[str, str | None]:
    """URL and key from the arguments, else ``JOBS_URL`` / ``JOBS_KEY``."""
    return (url or os.environ.get("JOBS_URL") or DEFAULT_URL,
            key if key is not None else (os.environ.get("JOBS_KEY") or None))


def http_options(url: str, key: str | None, timeout: float | httpx.Timeout,
                 headers: Mapping[str, str] | None) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client`` / ``httpx.AsyncClient``."""
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json",
                   **(headers or {})}
    if key:
        if not KEY_TEXT.fullmatch(key):
            # (the HTTP layer refused it with the key in its message, which jobsctl printed)
            raise InvalidKey("the function key holds a character a header cannot carry "
                             "(whitespace, a line end, a control or non-ASCII character): "
                             "check --key / $JOBS_KEY (the key is not shown)")
        all_headers["x-functions-key"] = key
    return {"base_url": api_base(url), "headers": all_headers, "timeout": timeout}


def new_job(handler: str, payload: Any, *, due_at: datetime | str | None,
            delay: float | None, idempotency_key: str | None,
            retry: RetryPolicy | Mapping[str, Any] | None,
            recurrence: Recurrence | Mapping[str, Any] | None, notify: str | None,
            timeout_seconds: float | None, labels: Mapping[str, str] | None) -> NewJob:
    return NewJob(handler=handler, payload=payload, due_at=due_at, delay=delay,
                  idempotency_key=idempotency_key, retry=as_model(RetryPolicy, retry),
                  recurrence=as_model(Recurrence, recurrence), notify=notify,
                  timeout_seconds=timeout_seconds,
                  labels=None if labels is None else dict(labels))


def as_model(cls: type, value: Any) -> Any:
    """A model given as itself or as a dict of its JSON members."""
    if isinstance(value, Mapping):
        return decode(cls, dict(value))
    return value


def as_new_jobs(jobs: Iterable[NewJob | Mapping[str, Any]]) -> list[NewJob]:
    return [as_model(NewJob, j) for j in jobs]


def job_filters(*, status: str | None, handler: str | None, slot: int | None,
                due_from: datetime | str | None, due_to: datetime | str | None,
                limit: int | None, label: LabelFilter) -> dict[str, Any]:
    return {"status": status, "handler": handler, "slot": slot, "due_from": due_from,
            "due_to": due_to, "limit": limit, "label": label_filter(label)}


def label_filter(label: LabelFilter) -> str | None:
    """``?label=``: ``{"team": "billing", "urgent": None}`` -> ``team:billing,urgent`` (a
    ``None`` value: the key with any value); a string is sent as it is."""
    if label is None or isinstance(label, str):
        return label
    for key, value in label.items():
        if value is not None and "," in value:  # (the server splits the filters on commas)
            raise ValueError(f"label filter {key!r}: a value with a comma cannot be filtered "
                             f"on ({value!r})")
    return ",".join(key if value is None else f"{key}:{value}" for key, value in label.items())


def job_update(payload: Any, retry: Any, recurrence: Any, timeout_seconds: Any,
               labels: Any) -> JobUpdate:
    """The PATCH body from ``update``'s arguments (``UNSET`` ones are not sent)."""
    return JobUpdate(payload=payload, retry=as_model(RetryPolicy, retry),
                     recurrence=as_model(Recurrence, recurrence),
                     timeout_seconds=timeout_seconds,
                     labels=dict(labels) if isinstance(labels, Mapping) else labels)
