"""Wires everything together: index, HTTP server, durable engine, timer triggers."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from .backend_model import BackendModel, BackendSettings
from .durable_engine import DurableEngine
from .http_triggers import ROUTE_PREFIX, HttpTriggerHandler, build_routes, key_ok
from .indexer import IndexedFunction, index_app, load_local_settings
from .instance_store import InstanceStore
from .invoker import FunctionInvoker, Invoker
from .management_api import WEBHOOK_PREFIX, ManagementApi, client_binding, rpc_prefix
from .timer_triggers import TimerTriggerRunner, resolve_schedule
from .workers import WorkerPool

log = logging.getLogger("devhost")
DEFAULT_HUB = "TestHubName"


@dataclass
class HostConfig:
    app_dir: Path
    app_module: str = "function_app"
    host: str = "127.0.0.1"
    port: int = 7071
    key: str = ""
    data_dir: Path | None = None
    max_activities: int = 8
    strict_determinism: bool = False
    backend_model: bool = True  # model the Azure Storage backend's costs and polling
    visibility_seconds: float | None = None  # an activity's message (None: the real 5 min)
    workers: int = 0  # worker processes for HTTP, activities and timers (0: this process)
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        self.app_dir = Path(self.app_dir).resolve()
        if not self.key:
            self.key = secrets.token_urlsafe(24)
        if self.data_dir is None:
            self.data_dir = self.app_dir / ".devhost-data"


def task_hub_name(app_dir: Path) -> str:
    path = app_dir / "host.json"
    if path.is_file():
        durable = json.loads(path.read_text()).get("extensions", {}).get("durableTask", {})
        if durable.get("hubName"):
            return str(durable["hubName"])
    return DEFAULT_HUB


def describe_functions(functions: list[IndexedFunction], base: str) -> str:
    lines = ["Functions:", ""]
    for fn in functions:
        if fn.trigger_type == "httpTrigger":
            methods = ",".join(m.upper() for m in fn.trigger.get("methods") or []) or "ALL"
            route = (fn.trigger.get("route") or fn.name).strip("/")
            lines.append(f"\t{fn.name}: [{methods}] {base}{ROUTE_PREFIX}{route}")
        elif fn.trigger_type == "timerTrigger":
            lines.append(f"\t{fn.name}: timerTrigger ({resolve_schedule(fn)})")
        else:
            lines.append(f"\t{fn.name}: {fn.trigger_type}")
    return "\n".join(lines) + "\n"


class DevHost:
    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.base_url = f"http://{config.host}:{config.port}"
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        cfg = self.config
        load_local_settings(cfg.app_dir)
        functions = index_app(cfg.app_dir, cfg.app_module)
        hub = task_hub_name(cfg.app_dir)
        binding = json.dumps(client_binding(self.base_url, hub, cfg.key))
        local = Invoker(str(cfg.app_dir), binding, max_workers=cfg.max_activities + 8)
        self.workers: WorkerPool | None = None
        self.invoker: FunctionInvoker = local
        if cfg.workers > 0:
            self.workers = WorkerPool(cfg.workers, str(cfg.app_dir), cfg.app_module, binding,
                                      local, log_level=cfg.log_level)
            self.invoker = self.workers
        assert cfg.data_dir is not None
        self.model = BackendModel(BackendSettings.from_host_json(
            cfg.app_dir, enabled=cfg.backend_model, visibility_seconds=cfg.visibility_seconds))
        self.engine = DurableEngine(InstanceStore(cfg.data_dir), functions, self.invoker,
                                    cfg.max_activities, cfg.strict_determinism, self.model)
        self.timers = TimerTriggerRunner(functions, self.invoker)
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_get("/admin/host/status", self._host_status)
        app.router.add_get("/admin/backend", self._backend)
        api = ManagementApi(self.engine, self.base_url, hub, cfg.key)
        api.add_routes(app, rpc_prefix(cfg.key))
        webhooks = web.Application()
        api.add_routes(webhooks, "/")
        webhooks.middlewares.append(self._require_key)
        app.add_subapp(WEBHOOK_PREFIX.rstrip("/"), webhooks)
        handler = HttpTriggerHandler(build_routes(functions), self.invoker, cfg.key)
        app.router.add_route("*", ROUTE_PREFIX + "{tail:.*}", handler.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        if self.workers is not None:
            await self.workers.start()
        await self.engine.start()
        await web.TCPSite(self.runner, cfg.host, cfg.port).start()
        print(describe_functions(functions, self.base_url), flush=True)
        print(f"Host key (x-functions-key / ?code=): {cfg.key}", flush=True)
        print(f"Data directory: {cfg.data_dir}", flush=True)
        log.info("Host started on %s (task hub %s)", self.base_url, hub)
        self.timers.start()

    @web.middleware
    async def _require_key(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not key_ok(request, self.config.key):
            return web.Response(status=401)
        return await handler(request)

    async def _host_status(self, request: web.Request) -> web.Response:
        status: dict[str, object] = {"state": "Running"}
        if self.workers is not None:
            status["workers"] = self.workers.describe()
        return web.json_response(status)

    async def _backend(self, request: web.Request) -> web.Response:
        """The backend model's figures: storage requests by step, polls, warnings."""
        if not key_ok(request, self.config.key):
            return web.Response(status=401)
        return web.json_response(self.model.report(asyncio.get_running_loop().time()))

    async def stop(self) -> None:
        log.info("Stopping host")
        await self.timers.stop()
        await self.engine.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.workers is not None:
            await self.workers.stop()
        else:
            assert isinstance(self.invoker, Invoker)
            self.invoker.shutdown()


async def serve(config: HostConfig) -> None:
    host = DevHost(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await host.start()
    try:
        await stop.wait()
    finally:
        await host.stop()
