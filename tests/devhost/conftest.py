"""Fixtures: a copy of the sample app served by a devhost subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devhost.testing import DevHostProcess
from tests.devhost.helpers import make_app_dir


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    root = tmp_path_factory.mktemp("devhost")
    app_dir = make_app_dir(root)
    marker = root / "timer-marker.txt"
    # the engine's semantics, timed exactly: the backend model (polling) has its own tests
    proc = DevHostProcess(app_dir, data_dir=root / "data", log_file=root / "devhost.log",
                          env={"SAMPLE_TIMER_MARKER": str(marker)},
                          extra_args=["--no-backend-model"])
    proc.timer_marker = marker  # type: ignore[attr-defined]
    with proc:
        yield proc
    print(proc.logs()[-5000:])

