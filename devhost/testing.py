"""Test helper: run ``python -m devhost`` as a subprocess for an app directory.

    with DevHostProcess(app_dir, data_dir=tmp_path / "data") as host:
        requests.get(f"{host.base_url}/api/jobs", headers=host.headers)
        host.kill()      # SIGKILL
        host.restart()   # same port, key and data dir
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevHostProcess:
    def __init__(
        self,
        app_dir: str | Path,
        *,
        port: int | None = None,
        key: str | None = None,
        data_dir: str | Path | None = None,
        env: dict[str, str] | None = None,
        log_file: str | Path | None = None,
        extra_args: list[str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.port = port or free_port()
        self.key = key or secrets.token_urlsafe(16)
        self.data_dir = Path(data_dir) if data_dir else self.app_dir / ".devhost-data"
        self.env = dict(env or {})
        self.log_file = Path(log_file) if log_file else self.data_dir.parent / (
            f"devhost-{self.port}.log")
        self.extra_args = list(extra_args or [])
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"x-functions-key": self.key}

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def rpc_url(self, path: str) -> str:
        """A URL of the Durable RPC API (the client's ``rpcBaseUrl``: its path holds a token
        derived from the key)."""
        from .management_api import rpc_prefix

        return self.url(rpc_prefix(self.key) + path.lstrip("/"))

    def start(self) -> DevHostProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["DEVHOST_KEY"] = self.key  # (not --key: a command line is readable by every user)
        cmd = [sys.executable, "-m", "devhost", "--app-dir", str(self.app_dir),
               "--port", str(self.port), "--data-dir", str(self.data_dir),
               *self.extra_args]
        log = self.log_file.open("ab")
        log.write(f"\n=== starting: {' '.join(cmd)}\n".encode())
        log.flush()
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        cwd=str(self.app_dir))
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"devhost exited with {self.process.returncode}:\n"
                                   + self.logs()[-4000:])
            with (contextlib.suppress(OSError, urllib.error.URLError),
                  urllib.request.urlopen(self.url("/admin/host/status"), timeout=1) as r):
                if r.status == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError("devhost did not become ready:\n" + self.logs()[-4000:])

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, like a crash."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def _signal(self, sig: int, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)

    def restart(self) -> DevHostProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> DevHostProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
