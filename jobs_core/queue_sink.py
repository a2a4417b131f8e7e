"""``EventSink`` over Azure Storage queues (``azure.storage.queue.aio``; Azurite in tests).

Reaching the queue service, like the blob store (see ``storage_settings.py``):
- ``JOBS_STORAGE_CONNECTION_STRING`` with a ``QueueEndpoint=`` (Azurite / development);
- ``JOBS_STORAGE__queueServiceUri`` (``https://<account>.queue.core.windows.net``) with the
  managed identity (``JOBS_STORAGE__clientId`` for a user-assigned one); the identity needs
  "Storage Queue Data Contributor" (it creates missing queues).

Messages are base64-encoded UTF-8 JSON: what an Azure Functions queue trigger expects by
default (``messageEncoding: base64``). A queue that does not exist yet is created on first use.
``JOBS_STORAGE_API_VERSION`` pins the queue requests' service version as it does the blobs'.
Messages never expire (``time_to_live=-1``): the service's default of 7 days would drop the
events of a consumer that is down longer, and an event once sent is not sent again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue._shared.policies_async import ExponentialRetry  # aio has no export
from azure.storage.queue.aio import QueueServiceClient

from .events import EventSendError
from .request_counter import RequestCounter
from .storage_settings import StorageSettings

log = logging.getLogger(__name__)
SEND_CONCURRENCY = 16
# The publisher retries later on its own: fail fast rather than hold a batch of jobs up.
RETRY_TOTAL = 1
RETRY_BACKOFF_S = 0.5
CONNECTION_TIMEOUT_S = 5
READ_TIMEOUT_S = 10
NEVER_EXPIRES = -1  # a message's time to live: the service keeps it until it is deleted


def connection_has_queue(connection_string: str) -> bool:
    return "queueendpoint=" in connection_string.lower() or \
        "blobendpoint=" not in connection_string.lower()


class QueueEventSink:
    """Sends messages to storage queues; raises ``EventSendError`` when a send fails."""

    def __init__(self, service: QueueServiceClient, credential: Any = None) -> None:
        self._service = service
        self._credential = credential
        self._known: set[str] = set()
        self._gate = asyncio.Semaphore(SEND_CONCURRENCY)

    @classmethod
    def from_settings(cls, settings: StorageSettings,
                      counter: RequestCounter | None = None) -> QueueEventSink | None:
        """The sink for ``settings``, or None when they name no queue service (a connection
        string without ``QueueEndpoint=``, or no ``JOBS_STORAGE__queueServiceUri``)."""
        options: dict[str, Any] = {
            # (the SDK annotates these seconds as int; it computes with floats)
            "retry_policy": ExponentialRetry(initial_backoff=RETRY_BACKOFF_S,  # type: ignore[arg-type]
                                             increment_base=1, retry_total=RETRY_TOTAL,
                                             random_jitter_range=RETRY_BACKOFF_S),  # type: ignore[arg-type]
            "connection_timeout": CONNECTION_TIMEOUT_S,
            "read_timeout": READ_TIMEOUT_S,
        }
        if counter is not None:
            options["_additional_pipeline_policies"] = [counter]
        if settings.api_version:  # JOBS_STORAGE_API_VERSION: the queues' requests too
            options["api_version"] = settings.api_version
        if settings.connection_string:
            if not connection_has_queue(settings.connection_string):
                return None
            return cls(QueueServiceClient.from_connection_string(settings.connection_string,
                                                                 **options))
        if not settings.queue_url:
            return None
        from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

        credential: Any = (ManagedIdentityCredential(client_id=settings.client_id)
                           if settings.client_id else DefaultAzureCredential())
        return cls(QueueServiceClient(settings.queue_url, credential=credential, **options),
                   credential)

    async def send(self, queue: str, messages: list[str]) -> None:
        client = self._service.get_queue_client(
            queue, message_encode_policy=TextBase64EncodePolicy())
        if queue not in self._known:
            try:
                await client.create_queue()
            except ResourceExistsError:
                pass
            except AzureError as exc:
                raise EventSendError(f"queue {queue!r} could not be created: {exc}") from exc
            self._known.add(queue)

        async def put(text: str) -> None:
            async with self._gate:
                await client.send_message(text, time_to_live=NEVER_EXPIRES)

        try:
            await asyncio.gather(*(put(m) for m in messages))
        except ResourceNotFoundError as exc:  # deleted meanwhile: create it on the next try
            self._known.discard(queue)
            raise EventSendError(f"queue {queue!r} does not exist: {exc}") from exc
        except AzureError as exc:
            raise EventSendError(f"queue {queue!r}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._service.close()
        if self._credential is not None:
            await self._credential.close()
