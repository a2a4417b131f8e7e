"""Index a Python v2 programming-model app the way the Python worker does."""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

log = logging.getLogger("devhost.indexer")

HTTP_TRIGGER = "httpTrigger"
TIMER_TRIGGER = "timerTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
ENTITY_TRIGGER = "entityTrigger"
DURABLE_CLIENT = "durableClient"


@dataclass
class IndexedFunction:
    name: str
    trigger_type: str
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    func: Callable[..., Any]
    is_async: bool
    trigger_param: str
    durable_client_params: list[str] = field(default_factory=list)
    wants_context: bool = False

    @property
    def durable_name(self) -> str:
        """Name used by orchestrations/activities (the function name, as the extension does)."""
        return self.name


def load_local_settings(app_dir: Path) -> dict[str, str]:
    """Copy ``local.settings.json`` ``Values`` into the environment without overriding."""
    path = app_dir / "local.settings.json"
    if not path.is_file():
        return {}
    values = json.loads(path.read_text(encoding="utf-8")).get("Values") or {}
    applied: dict[str, str] = {}
    for key, value in values.items():
        if key not in os.environ:
            os.environ[key] = str(value)
            applied[key] = str(value)
    return applied


def find_app(module: Any) -> func.FunctionRegister:
    """The module's one app. Functions of blueprints registered on it (``register_functions``)
    are the app's own from then on: ``get_functions()`` lists them, as the worker sees them."""
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not apps:
        hint = ""
        if any(isinstance(v, func.Blueprint | df.Blueprint) for v in vars(module).values()):
            hint = (": a blueprint alone is not indexed; register it on an app "
                    "(app = df.DFApp(); app.register_functions(blueprint))")
        raise RuntimeError(
            f"module {module.__name__!r} defines no FunctionApp/DFApp instance{hint}")
    if len(apps) > 1:
        raise RuntimeError(f"module {module.__name__!r} defines more than one app instance")
    return apps[0]


def index_app(app_dir: Path, module_name: str = "function_app") -> list[IndexedFunction]:
    """Import the app module from ``app_dir`` and read ``get_functions()`` once."""
    app_dir = app_dir.resolve()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module = importlib.import_module(module_name)
    app = find_app(module)
    return [_index_function(f) for f in app.get_functions()]


def _index_function(function: Any) -> IndexedFunction:
    raw = json.loads(function.get_function_json())
    bindings: list[dict[str, Any]] = raw["bindings"]
    trigger = next(b for b in bindings if b["type"].lower().endswith("trigger"))
    user_func = function.get_user_function()
    params = inspect.signature(user_func).parameters
    binding_names = {b["name"] for b in bindings}
    return IndexedFunction(
        name=function.get_function_name(),
        trigger_type=trigger["type"],
        trigger=trigger,
        bindings=bindings,
        func=user_func,
        is_async=inspect.iscoroutinefunction(user_func),
        trigger_param=trigger["name"],
        durable_client_params=[b["name"] for b in bindings if b["type"] == DURABLE_CLIENT],
        wants_context="context" in params and "context" not in binding_names,
    )
