"""Shared fixtures: an Azurite per test session and a fresh blob container per test.

Rule: a test that needs Azurite is marked ``azurite``. Outside CI it is skipped (with the
reason) when Azurite cannot start; with ``CI`` set, Azurite failing to start is an error and an
``azurite`` test that ends up skipped for any reason counts as a failure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from jobs_core.blob_store import AzureBlobStore
from jobs_core.memory_store import InMemoryStore
from jobs_core.request_counter import RequestCounter
from jobs_core.store import JobStore
from tests import azurite as azurite_helpers


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test that uses Azurite is an Azurite test, whether or not its author marked it.
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if ("azurite" in fixtures or "azurite_store" in fixtures) and not item.get_closest_marker(
            "azurite"
        ):
            item.add_marker(pytest.mark.azurite)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if (
        in_ci()
        and report.skipped
        and not hasattr(report, "wasxfail")
        and (item.get_closest_marker("azurite") or item.get_closest_marker("browser"))
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = ("an Azurite or browser test was skipped in CI, which counts as a "
                           f"failure: {reason}")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite_helpers.Azurite]:
    """A running Azurite: the one in AZURITE_CONNECTION_STRING / AZURITE_BLOB_URL, or a
    private one on free ports with a fresh data folder, stopped at the end of the session."""
    try:
        found = azurite_helpers.from_environment()
        if found is not None:
            yield found
            return
        started = azurite_helpers.start(log_dir=tmp_path_factory.mktemp("azurite-log"))
    except azurite_helpers.AzuriteUnavailable as err:
        if in_ci():
            pytest.fail(f"Azurite is required in CI: {err}", pytrace=False)
        pytest.skip(f"Azurite unavailable: {err}")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def azurite_store(azurite: azurite_helpers.Azurite) -> AsyncIterator[AzureBlobStore]:
    """An ``AzureBlobStore`` on a new container; ``store.counter`` counts its requests
    (reset after the container is created)."""
    counter = RequestCounter()
    store = await AzureBlobStore.open(
        azurite_helpers.settings(azurite, azurite_helpers.unique_container()), counter=counter
    )
    counter.reset()
    try:
        yield store
    finally:
        try:
            await store._container.delete_container()  # keep Azurite small between tests
        finally:
            await store.close()


@pytest.fixture(params=["memory", pytest.param("azurite", marks=pytest.mark.azurite)])
def store(request: pytest.FixtureRequest) -> JobStore:
    """The store a test runs on, once in memory and once on Azurite (the contract suite and
    the scenarios). A plain fixture: an async one could not set up ``azurite_store`` on
    demand."""
    if request.param == "memory":
        return InMemoryStore()
    store: JobStore = request.getfixturevalue("azurite_store")
    return store
