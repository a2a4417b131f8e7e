"""``--workers N``: the app in N worker processes, like N instances of a scaled-out app.

The host keeps what the Functions host and the Durable extension keep (routes, keys, the
orchestration store, timers, the backend model) and runs orchestrator episodes itself; HTTP
requests, activities and timer functions go round-robin to the workers, each with its own
import of the app (its own runtime, caches, group commit, event outbox). The workers talk to
Durable through the host's loopback API, as the real workers do.

``WorkerPool.invoke`` has the in-process ``Invoker.invoke``'s signature, so the rest of devhost
does not know which one it has. A worker that died is started again on its next turn (like a
replaced instance); an invocation it was running fails (HTTP 500, a failed activity attempt
that the orchestrator's own recovery handles).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from . import invocation_wire as wire
from .indexer import IndexedFunction
from .invoker import Invoker
from .worker import BINDING_ENV

log = logging.getLogger("devhost.workers")
STARTUP_SECONDS = 60.0


@dataclass
class _Worker:
    name: str
    socket: str
    process: subprocess.Popen[bytes] | None = None
    session: aiohttp.ClientSession | None = None
    invocations: int = 0
    starts: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class WorkerPool:
    def __init__(self, count: int, app_dir: str, app_module: str, binding: str,
                 local: Invoker, *, log_level: str = "INFO") -> None:
        self.app_dir, self.app_module, self.binding = app_dir, app_module, binding
        self.local = local  # orchestrator episodes run here (and ``pool`` is its thread pool)
        self.pool = local.pool
        self.log_level = log_level
        self._dir = tempfile.mkdtemp(prefix="devhost-w-")  # short: a Unix socket path <108
        self.workers = [_Worker(f"w{i + 1}", os.path.join(self._dir, f"w{i + 1}.sock"))
                        for i in range(count)]
        self._turn = itertools.cycle(self.workers)

    async def start(self) -> None:
        await asyncio.gather(*(self._ensure(w) for w in self.workers))

    async def invoke(self, fn: IndexedFunction, trigger_value: Any,
                     log_execution: bool = True) -> Any:
        kind = fn.trigger_type
        if kind not in wire.KINDS:
            return await self.local.invoke(fn, trigger_value, log_execution)
        worker = next(self._turn)
        session = await self._ensure(worker)
        worker.invocations += 1
        body = {"function": fn.name, "kind": kind, "log": log_execution,
                "value": wire.encode_trigger(kind, trigger_value)}
        try:
            async with session.post("http://worker/invoke", json=body) as response:
                answer = await response.json()
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise RuntimeError(f"worker {worker.name} did not answer ({exc}); "
                               "it is started again on its next turn") from None
        if "error" in answer:
            raise wire.decode_error(answer["error"])
        return wire.decode_result(kind, answer["result"])

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": w.name, "pid": w.process.pid if w.process else None,
                 "alive": w.process is not None and w.process.poll() is None,
                 "invocations": w.invocations, "starts": w.starts} for w in self.workers]

    async def _ensure(self, worker: _Worker) -> aiohttp.ClientSession:
        if worker.process is not None and worker.process.poll() is None and \
                worker.session is not None:
            return worker.session
        async with worker.lock:
            if worker.process is None or worker.process.poll() is not None:
                await self._spawn(worker)
            assert worker.session is not None
            return worker.session

    async def _spawn(self, worker: _Worker) -> None:
        if worker.session is not None:
            await worker.session.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(worker.socket)
        cmd = [sys.executable, "-m", "devhost.worker", "--app-dir", self.app_dir,
               "--app", self.app_module, "--socket", worker.socket,
               "--name", worker.name, "--log-level", self.log_level]
        # the binding holds the key (code=): in the environment, not the process list
        env = {**os.environ, BINDING_ENV: self.binding}
        # stdin stays open in the host: its EOF tells the worker that the host is gone
        worker.process = await asyncio.to_thread(subprocess.Popen, cmd, stdin=subprocess.PIPE,
                                                 cwd=self.app_dir, env=env)
        worker.starts += 1
        worker.session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=worker.socket, limit=0),
            timeout=aiohttp.ClientTimeout(total=None))
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker {worker.name} exited with "
                                   f"{worker.process.returncode} while starting")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with worker.session.get("http://worker/ready") as response:
                    if response.status == 200:
                        log.info("worker %s started (pid %d)", worker.name, worker.process.pid)
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {worker.name} did not start in {STARTUP_SECONDS}s")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for worker in self.workers:
            if worker.session is not None:
                await worker.session.close()
            process = worker.process
            if process is None:
                continue
            if process.stdin is not None:
                process.stdin.close()  # EOF: the worker exits
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self._dir, ignore_errors=True)
        self.local.shutdown()

