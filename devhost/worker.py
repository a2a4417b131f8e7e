"""A worker process of ``python -m devhost --workers N``: like one more instance of the app.

It imports the app itself (its own module state: the app's runtime, caches and group commit
are this process's), serves invocations from the host on a Unix socket (``POST /invoke``), and
exits when the host goes away: the host holds the write end of the worker's stdin, so EOF on it
means the host died (even by SIGKILL) or stopped.

    DEVHOST_BINDING=JSON python -m devhost.worker --app-dir . --app function_app --socket PATH \
        --name w1

The binding JSON holds the function key (``code=``), so it comes from the environment
(``DEVHOST_BINDING``): a command line is readable by every user of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from aiohttp import web

from . import invocation_wire as wire
from .indexer import index_app, load_local_settings
from .invoker import Invoker

log = logging.getLogger("devhost.worker")
BINDING_ENV = "DEVHOST_BINDING"  # the durable client binding JSON (it holds the key)


def _exit_when_the_host_is_gone() -> None:
    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)  # the host is gone: no cleanup can matter more than not lingering

    threading.Thread(target=watch, name="devhost-host-watch", daemon=True).start()


class WorkerServer:
    def __init__(self, app_dir: Path, app_module: str, binding: str, threads: int) -> None:
        load_local_settings(app_dir)
        self.functions = {fn.name: fn for fn in index_app(app_dir, app_module)}
        self.invoker = Invoker(str(app_dir), binding, max_workers=threads)

    async def invoke(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        fn = self.functions.get(body["function"])
        if fn is None:
            return web.json_response({"error": wire.encode_error(
                LookupError(f"no function {body['function']!r} in this worker"), "")})
        kind = body["kind"]
        try:
            result = await self.invoker.invoke(fn, wire.decode_trigger(kind, body["value"]),
                                               log_execution=body.get("log", True))
        except Exception as exc:  # the function's own failure: the host reports it
            return web.json_response(
                {"error": wire.encode_error(exc, "".join(traceback.format_exception(exc)))})
        return web.json_response({"result": wire.encode_result(kind, result)})

    async def ready(self, request: web.Request) -> web.Response:
        return web.json_response({"pid": os.getpid()})


async def serve(args: argparse.Namespace) -> None:
    server = WorkerServer(Path(args.app_dir), args.app, args.binding, args.threads)
    app = web.Application(client_max_size=100 * 1024 * 1024)
    app.router.add_post("/invoke", server.invoke)
    app.router.add_get("/ready", server.ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.UnixSite(runner, args.socket).start()
    log.info("worker %s (pid %d) serving on %s", args.name, os.getpid(), args.socket)
    await asyncio.Event().wait()  # until the host stops it (SIGTERM) or goes away (stdin EOF)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m devhost.worker")
    p.add_argument("--app-dir", required=True)
    p.add_argument("--app", default="function_app")
    p.add_argument("--socket", required=True)
    p.add_argument("--binding", default=os.environ.get(BINDING_ENV),
                   help=f"the durable client binding JSON (default: ${BINDING_ENV})")
    p.add_argument("--name", default="w1")
    p.add_argument("--threads", type=int, default=16, help="thread pool for sync functions")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if not args.binding:
        p.error(f"give the binding JSON in ${BINDING_ENV} (or --binding)")
    logging.basicConfig(level=args.log_level.upper(),
                        format=f"[%(asctime)s] %(levelname)s [{args.name}] %(name)s: "
                               "%(message)s")
    _exit_when_the_host_is_gone()
    sys.path.insert(0, str(Path(args.app_dir).resolve()))
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
