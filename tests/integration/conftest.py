"""The store every scenario of this folder runs on: in memory, and Azurite alike."""

from __future__ import annotations

import pytest

from jobs_core import InMemoryStore
from jobs_core.store import JobStore


@pytest.fixture(params=["memory", pytest.param("azurite", marks=pytest.mark.azurite)])
def store(request: pytest.FixtureRequest) -> JobStore:
    if request.param == "memory":
        return InMemoryStore()
    return request.getfixturevalue("azurite_store")  # type: ignore[no-any-return]
