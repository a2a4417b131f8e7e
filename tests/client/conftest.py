"""One devhost on Azurite for every client test (package scope: started once, ~5 s), and
clients on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from devhost.testing import DevHostProcess
from jobs_client import AsyncJobsClient, JobsClient
from tests import azurite as azurite_helpers
from tests.client.helpers import Recorder
from tests.e2e.helpers import Api, make_host


@pytest.fixture(scope="package")
def host(azurite: azurite_helpers.Azurite,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    root = tmp_path_factory.mktemp("client-e2e")
    devhost = make_host(azurite, root, JOBS_MAX_WAIT_SECONDS="20",
                        JOBS_HANDLER_LIMITS='{"sleep": {"max_concurrency": 5}}')
    with devhost:
        Api(devhost).start()
        yield devhost
    print(devhost.logs()[-6000:])


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(host: DevHostProcess, recorder: Recorder) -> Iterator[JobsClient]:
    """A JobsClient on the package's host; ``recorder.calls`` lists what it sent."""
    with JobsClient(host.base_url, host.key, transport=recorder.sync()) as jobs:
        yield jobs


@pytest.fixture
async def aclient(host: DevHostProcess, recorder: Recorder) -> AsyncIterator[AsyncJobsClient]:
    async with AsyncJobsClient(host.base_url, host.key, transport=recorder.asynchronous()) \
            as jobs:
        yield jobs
