"""scripts/run.sh as a person uses it: it starts Azurite and an app on devhost (the repository's,
or an app of one's own with APP_DIR), the curl it prints names a handler of that app, and Ctrl-C
(SIGINT to its process group) or SIGTERM (to the script alone, as a supervisor sends it) stops
everything it started. Ports and data folders of its own (the env variables run.sh reads), so a
run.sh of the developer's can keep running beside it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests

from devhost.testing import free_port
from tests.azurite import LOCAL_AZURITE
from tests.e2e.helpers import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.azurite, pytest.mark.slow]
READY_TIMEOUT_S = 120  # setup-runtime.sh is a stamp check once scripts/bootstrap.sh ran
STOP_TIMEOUT_S = 20  # run.sh gives each process 10 s after SIGTERM, then SIGKILL


def three_free_ports() -> int:
    """A base port whose next two are free too (Azurite's blob, queue and table)."""
    for _ in range(50):
        base = free_port()
        socks = []
        try:
            for port in (base, base + 1, base + 2):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no three consecutive free ports")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(text: str, log: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, f"run.sh exited {proc.returncode}:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)
    pytest.fail(f"run.sh printed no {text!r}:\n{log.read_text()[-4000:]}")


@pytest.mark.parametrize(("how", "app_dir", "job"), [
    ("sigterm", REPO_ROOT, {"handler": "echo", "payload": {"hello": "run.sh"}}),
    ("ctrl-c", REPO_ROOT / "examples" / "own_app",
     {"handler": "render_invoice", "payload": {"lines": [{"qty": 1, "price": 2}]}}),
], ids=["sigterm", "ctrl-c-own-app"])
def test_run_sh_serves_the_app_and_stops_everything_it_started(
        how: str, app_dir: Path, job: dict[str, object], tmp_path: Path) -> None:
    if not LOCAL_AZURITE.exists():
        pytest.skip("Azurite is not installed in .azurite/ (scripts/setup-runtime.sh)")
    port, azurite_port, key = free_port(), three_free_ports(), "run-sh-test-key"
    env = {**os.environ, "PORT": str(port), "AZURITE_PORT": str(azurite_port),
           "DEVHOST_KEY": key, "AZURITE_LOCATION": str(tmp_path / "azurite"),
           "DEVHOST_DATA_DIR": str(tmp_path / "devhost"), "APP_DIR": str(app_dir)}
    for name in [n for n in env if n.startswith("JOBS_")]:
        del env[name]  # run.sh's settings (local.settings.json), not the test session's
    settings = app_dir / "local.settings.json"
    had_settings = settings.exists()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    started: list[psutil.Process] = []
    try:
        wait_for("Ready.", log, proc)
        started = psutil.Process(proc.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in started]
        assert any("azurite" in c and f"--blobPort {azurite_port}" in c for c in commands)
        assert any("-m devhost" in c and f"--port {port}" in c for c in commands), commands

        assert f'"handler": "{job["handler"]}"' in log.read_text()  # in the printed curl
        r = requests.post(f"http://127.0.0.1:{port}/api/jobs?wait=20", timeout=30,
                          headers={"x-functions-key": key}, json=job)
        assert r.status_code in (200, 201), r.text
        assert r.json()["status"] == "succeeded", r.json()

        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:  # the terminal sends SIGINT to the whole foreground process group
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=STOP_TIMEOUT_S)
        _, alive = psutil.wait_procs(started, timeout=2)
        assert not alive, [(p.pid, p.cmdline()) for p in alive]
        assert not port_open(azurite_port) and not port_open(port)
        assert "SIGKILL" not in log.read_text(), "a process ignored SIGTERM for 10 s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for child in started:  # only if the test failed: what run.sh left behind
            if child.is_running():
                child.kill()
        if not had_settings:
            settings.unlink(missing_ok=True)
