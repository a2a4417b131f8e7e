"""Storage settings from the environment: a connection string or a managed identity."""

from __future__ import annotations

import pytest

from jobs_core.blob_store import AzureBlobStore
from jobs_core.storage_settings import ConfigurationError, StorageSettings
from tests import azurite as azurite_helpers

CONN = azurite_helpers.connection_string("http://127.0.0.1:10000/devstoreaccount1")


def test_settings_connection_string() -> None:
    settings = StorageSettings.from_env({"JOBS_STORAGE_CONNECTION_STRING": CONN})
    assert settings == StorageSettings(container="jobs", connection_string=CONN)
    assert not settings.uses_identity
    assert azurite_helpers.ACCOUNT_KEY not in repr(settings)


def test_settings_connection_string_wins_over_account_url() -> None:
    settings = StorageSettings.from_env(
        {
            "JOBS_STORAGE_CONNECTION_STRING": CONN,
            "JOBS_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
            "JOBS_CONTAINER": "my-jobs",
            "JOBS_STORAGE_API_VERSION": "2025-11-05",
        }
    )
    assert (settings.connection_string, settings.account_url) == (CONN, None)
    assert (settings.container, settings.api_version) == ("my-jobs", "2025-11-05")


def test_settings_managed_identity() -> None:
    settings = StorageSettings.from_env(
        {
            "JOBS_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
            "JOBS_STORAGE__clientId": "00000000-0000-0000-0000-000000000001",
        }
    )
    assert settings.uses_identity
    assert settings.account_url == "https://acct.blob.core.windows.net"
    assert settings.client_id == "00000000-0000-0000-0000-000000000001"


def test_settings_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBS_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("JOBS_STORAGE__blobServiceUri", "https://acct.blob.core.windows.net")
    assert StorageSettings.from_env().account_url == "https://acct.blob.core.windows.net"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "storage is not configured"),
        ({"JOBS_STORAGE_CONNECTION_STRING": "  "}, "storage is not configured"),
        ({"JOBS_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}, "not supported"),
        ({"JOBS_STORAGE_CONNECTION_STRING": "nonsense"}, "not a connection string"),
        ({"JOBS_STORAGE__blobServiceUri": "acct.blob.core.windows.net"}, "must be a URL"),
        ({"JOBS_STORAGE_CONNECTION_STRING": CONN, "JOBS_CONTAINER": "Bad_Name"}, "container"),
    ],
)
def test_settings_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        StorageSettings.from_env(env)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("client_id", [None, "00000000-0000-0000-0000-000000000001"])
async def test_from_settings_with_identity_sends_nothing(client_id: str | None) -> None:
    settings = StorageSettings(
        account_url="https://acct.blob.core.windows.net", client_id=client_id
    )
    store = AzureBlobStore.from_settings(settings)
    expected = "ManagedIdentityCredential" if client_id else "DefaultAzureCredential"
    assert type(store._credential).__name__ == expected
    assert store.container_name == "jobs"
    await store.close()
