"""Command line: ``python -m devhost [--app-dir .] [--port 7071] ...``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from .host import HostConfig, serve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    p.add_argument("--app-dir", default=".", help="directory holding the app module")
    p.add_argument("--app", default="function_app", help="app module name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7071)
    p.add_argument("--key", default=os.environ.get("DEVHOST_KEY", ""),
                   help="function key (default: $DEVHOST_KEY or a generated one)")
    p.add_argument("--data-dir", default=None, help="default: <app-dir>/.devhost-data")
    p.add_argument("--max-activities", type=int, default=8, help="concurrent activities")
    p.add_argument("--strict-determinism", action="store_true",
                   help="also compare activity inputs and timer fire times on replay")
    p.add_argument("--no-backend-model", action="store_true",
                   help="do not model the Azure Storage backend (its storage requests, queue "
                        "polling, 32 messages per episode, size limits, visibility timeout)")
    p.add_argument("--visibility-timeout", type=float, default=None, metavar="SECONDS",
                   help="with the model: when an activity interrupted by a crash runs again "
                        "(default 300, the real backend's)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="run the app in N worker processes, like N instances: HTTP requests, "
                        "activities and timer functions go round-robin to them (default 0: "
                        "in the host process)")
    p.add_argument("--log-level", default=os.environ.get("DEVHOST_LOG_LEVEL", "INFO"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    config = HostConfig(
        app_dir=Path(args.app_dir), app_module=args.app, host=args.host, port=args.port,
        key=args.key, data_dir=Path(args.data_dir) if args.data_dir else None,
        max_activities=args.max_activities, strict_determinism=args.strict_determinism,
        backend_model=not args.no_backend_model, visibility_seconds=args.visibility_timeout,
        workers=args.workers, log_level=args.log_level.upper(),
    )
    asyncio.run(serve(config))
