"""Where the scheduler's blobs live, read once from app settings.

Two ways to reach storage:

- ``JOBS_STORAGE_CONNECTION_STRING``: a full connection string. For Azurite and local
  development only (production storage has shared keys turned off).
- ``JOBS_STORAGE__blobServiceUri`` (the account's blob URL, e.g.
  ``https://myaccount.blob.core.windows.net``) with a managed identity; set
  ``JOBS_STORAGE__clientId`` to use a user-assigned identity. The names follow the Functions
  host's identity-based connection convention (``<prefix>__blobServiceUri``, ``__clientId``).

State-change events go to queues of the same account: with a connection string, its
``QueueEndpoint=``; with an identity, ``JOBS_STORAGE__queueServiceUri``
(``https://<account>.queue.core.windows.net``). See ``queue_sink.py``.

Optional: ``JOBS_CONTAINER`` (default ``jobs``) and ``JOBS_STORAGE_API_VERSION`` (pin the
storage service version, e.g. ``2025-11-05`` for an Azurite run without
``--skipApiVersionCheck``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import SettingsError

ENV_CONNECTION_STRING = "JOBS_STORAGE_CONNECTION_STRING"
ENV_ACCOUNT_URL = "JOBS_STORAGE__blobServiceUri"
ENV_CLIENT_ID = "JOBS_STORAGE__clientId"
ENV_QUEUE_URL = "JOBS_STORAGE__queueServiceUri"
ENV_CONTAINER = "JOBS_CONTAINER"
ENV_API_VERSION = "JOBS_STORAGE_API_VERSION"

DEFAULT_CONTAINER = "jobs"

# Azure container names: 3-63 chars, lowercase letters, digits and single hyphens.
_CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


ConfigurationError = SettingsError  # (the storage settings' name for it, kept for callers)


@dataclass(frozen=True, slots=True)
class StorageSettings:
    container: str = DEFAULT_CONTAINER
    connection_string: str | None = field(default=None, repr=False)  # holds the account key
    account_url: str | None = None
    client_id: str | None = None
    queue_url: str | None = None  # queue service URL for state-change events (identity only)
    api_version: str | None = None

    def __post_init__(self) -> None:
        if not self.connection_string and not self.account_url:
            raise ConfigurationError(
                f"storage is not configured: set {ENV_CONNECTION_STRING} (Azurite / development) "
                f"or {ENV_ACCOUNT_URL} (account blob URL, managed identity)"
            )
        if self.connection_string and "=" not in self.connection_string:
            raise ConfigurationError(
                f"{ENV_CONNECTION_STRING} is not a connection string "
                "(expected 'DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...;"
                "BlobEndpoint=...')"
            )
        if self.connection_string and self.connection_string.strip().lower().startswith(
            "usedevelopmentstorage"
        ):
            raise ConfigurationError(
                f"{ENV_CONNECTION_STRING}: 'UseDevelopmentStorage=true' is not supported; give "
                "Azurite's full connection string (with BlobEndpoint=http://127.0.0.1:<port>/...)"
            )
        if self.account_url and not self.account_url.startswith(("https://", "http://")):
            raise ConfigurationError(
                f"{ENV_ACCOUNT_URL} must be a URL such as "
                f"'https://<account>.blob.core.windows.net', got {self.account_url!r}"
            )
        if not _CONTAINER_RE.fullmatch(self.container):
            raise ConfigurationError(
                f"{self.container!r} is not a valid container name (3-63 characters: lowercase "
                "letters, digits and single hyphens, starting and ending with a letter or digit)"
            )

    @property
    def uses_identity(self) -> bool:
        """True when the account URL plus a (managed identity) credential is used."""
        return not self.connection_string

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> StorageSettings:
        """Build settings from app settings (``os.environ`` by default).

        A connection string wins over an account URL when both are set.
        """

        def get(key: str) -> str | None:
            value = env.get(key, "").strip()
            return value or None

        connection_string = get(ENV_CONNECTION_STRING)
        return cls(
            container=get(ENV_CONTAINER) or DEFAULT_CONTAINER,
            connection_string=connection_string,
            account_url=None if connection_string else get(ENV_ACCOUNT_URL),
            client_id=None if connection_string else get(ENV_CLIENT_ID),
            queue_url=None if connection_string else get(ENV_QUEUE_URL),
            api_version=get(ENV_API_VERSION),
        )
