"""Count the HTTP requests the blob adapter sends, by operation.

``RequestCounter`` is an azure-core pipeline policy. Pass it to a storage client through
``_additional_pipeline_policies=[counter]`` (the blob clients ignore ``per_call_policies`` and
``per_retry_policies``: the SDK runs those once per attempt). It sits after the SDK's retry
policy, so every attempt is counted, retries included. It imports nothing from
``azure.storage.blob``.

Operation names, from the HTTP request:

============================  ==================  ==========================================
request                       name                ``AzureBlobStore`` / ``InMemoryStore`` op
============================  ==================  ==========================================
PUT ``comp=appendblock``      ``append``          ``append`` (same name in InMemoryStore)
PUT with ``x-ms-blob-type``   ``create``          first ``append`` of a blob (``create``);
                                                  ``write_claim(etag=None)`` (memory:
                                                  ``write_claim``)
PUT ``comp=metadata``         ``set_metadata``    ``set_metadata``; ``write_claim(etag=...)``
                                                  (memory: ``write_claim``)
HEAD blob                     ``get_properties``  ``read_claim``, ``stat`` (memory: same names);
                                                  ``read`` past the end (416 fallback)
GET blob                      ``read``            ``read`` (one per 4 MiB chunk)
GET ``comp=list``             ``list``            ``list`` (one per page of 5,000 blobs)
DELETE blob                   ``delete``          ``delete``
POST ``.../messages``         ``enqueue``         a queue message (``queue_sink``, events)
PUT queue (no query)          ``create_queue``    ``queue_sink`` creating a missing queue
PUT ``restype=container``     ``create_container``  ``ensure_container``
anything else                 ``other:<METHOD>``
============================  ==================  ==========================================
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy


def operation_name(method: str, url: str, headers: Any) -> str:
    """The operation name for one HTTP request (see the module docstring)."""
    method = method.upper()
    query = parse_qs(urlsplit(url).query)
    comp = (query.get("comp") or [""])[0].lower()
    restype = (query.get("restype") or [""])[0].lower()
    has_blob_type = any(str(k).lower() == "x-ms-blob-type" for k in headers)
    if method == "PUT":
        if comp == "appendblock":
            return "append"
        if comp == "metadata":
            return "set_metadata"
        if restype == "container" and not comp:
            return "create_container"
        if has_blob_type and not comp:
            return "create"
        if not comp and not restype:
            return "create_queue"  # PUT <queue URL>: the only other plain PUT we send
    elif method == "HEAD" and not comp and not restype:
        return "get_properties"
    elif method == "GET":
        if comp == "list":
            return "list"
        if not comp and not restype:
            return "read"
    elif method == "DELETE" and not comp and not restype:
        return "delete"
    elif method == "POST" and urlsplit(url).path.endswith("/messages"):
        return "enqueue"
    return f"other:{method}"


RATE_WINDOW_SECONDS = 300


class RequestCounter(SansIOHTTPPolicy[Any, Any]):
    """Counts every request sent through the pipeline, retries included.

    Safe to share between clients, threads and event loops (a lock guards the counts).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._seconds: deque[list[int]] = deque()  # [monotonic second, requests], recent first

    def on_request(self, request: PipelineRequest[Any]) -> None:
        http = request.http_request
        op = operation_name(http.method, http.url, http.headers)
        second = int(time.monotonic())
        with self._lock:
            self._counts[op] += 1
            if self._seconds and self._seconds[0][0] == second:
                self._seconds[0][1] += 1
            else:
                self._seconds.appendleft([second, 1])
                while len(self._seconds) > RATE_WINDOW_SECONDS:
                    self._seconds.pop()

    def recent(self, seconds: int = 60) -> int:
        """Requests sent in the last ``seconds`` seconds (at most ``RATE_WINDOW_SECONDS``)."""
        since = int(time.monotonic()) - seconds
        with self._lock:
            return sum(n for second, n in self._seconds if second > since)

    def snapshot(self) -> dict[str, int]:
        """The counts so far, by operation name."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def __repr__(self) -> str:
        return f"RequestCounter({self.snapshot()!r})"
