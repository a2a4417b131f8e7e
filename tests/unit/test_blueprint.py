"""The scheduler as a blueprint: what an app registers, the key every route needs whatever the
app's own default, and how an app's handlers join the scheduler's registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

import function_app
import jobs_api
import jobs_api.registry
from jobs_api import HandlerRegistry, JobContext, scheduler_blueprint
from jobs_core.errors import UnknownHandlerError

ROOT = Path(__file__).resolve().parents[2]


def bindings(app: func.FunctionRegister) -> dict[str, list[dict[str, Any]]]:
    return {fn.get_function_name(): json.loads(fn.get_function_json())["bindings"]
            for fn in app.get_functions()}


def test_the_repository_app_is_the_blueprint_and_nothing_else() -> None:
    # get_functions() works once per app (it remembers the names it saw), and another test
    # reads the repository app's: compare what was registered, function by function
    assert function_app.app._function_builders == scheduler_blueprint._function_builders
    app = df.DFApp()
    app.register_functions(scheduler_blueprint)
    kinds = {b["type"] for found in bindings(app).values() for b in found}
    assert {"httpTrigger", "timerTrigger", "orchestrationTrigger", "activityTrigger",
            "durableClient"} <= kinds


@pytest.mark.parametrize("make_app", [
    lambda: func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS),
    lambda: df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS),
])
def test_every_route_needs_a_key_even_in_an_anonymous_app(make_app: Any) -> None:
    app = make_app()
    app.register_functions(scheduler_blueprint)

    @app.route(route="mine", methods=["GET"])
    def mine(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    found = bindings(app)
    levels = {name: next(b["authLevel"] for b in found[name] if b["type"] == "httpTrigger")
              for name in found if any(b["type"] == "httpTrigger" for b in found[name])}
    assert levels.pop("mine").upper() == "ANONYMOUS"  # the app's own default, for its routes
    assert len(levels) >= 18
    assert {level.upper() for level in levels.values()} == {"FUNCTION"}, levels


def test_an_app_function_with_a_scheduler_name_fails_indexing() -> None:
    app = df.DFApp()
    app.register_functions(scheduler_blueprint)

    @app.route(route="mine", methods=["GET"])
    def jobs_create(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(ValueError, match="jobs_create"):
        app.get_functions()


def _registry(*names: str) -> HandlerRegistry:
    registry = HandlerRegistry()
    for name in names:
        registry.handler(name)(lambda ctx, name=name: name)
    return registry


def test_register_handlers_adds_an_apps_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler = HandlerRegistry()
    monkeypatch.setattr(jobs_api.registry, "handlers", scheduler)
    mine = HandlerRegistry()

    @mine.handler("send_email")
    def send_email(ctx: JobContext) -> str:
        return "sent"

    jobs_api.register_handlers(mine, _registry("resize"))
    assert scheduler.names() == ["resize", "send_email"]
    assert scheduler.get("send_email") is send_email
    jobs_api.register_handlers(mine)  # the same handlers again: nothing changes
    assert scheduler.names() == ["resize", "send_email"]
    with pytest.raises(UnknownHandlerError):
        scheduler.get("echo")


def test_a_name_taken_by_another_handler_is_refused_and_nothing_is_added() -> None:
    scheduler = _registry("echo")
    with pytest.raises(ValueError, match="registered twice: echo"):
        scheduler.include(_registry("alpha", "echo"))
    assert scheduler.names() == ["echo"]


def test_a_module_instead_of_its_registry_is_refused_with_the_fix() -> None:
    import sample_handlers

    with pytest.raises(TypeError, match=r"register_handlers\(sample_handlers.registry\)"):
        jobs_api.register_handlers(sample_handlers)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="HandlerRegistry"):
        HandlerRegistry().include({"echo": None})  # type: ignore[arg-type]


def test_the_example_apps_host_json_is_the_repositorys() -> None:
    """README step 1 copies host.json into an app of one's own: the example did, and must
    follow when ours changes (hubName, partitionCount, the extension bundle)."""
    ours = json.loads((ROOT / "host.json").read_text())
    example = json.loads((ROOT / "examples" / "own_app" / "host.json").read_text())
    assert example == ours
    assert ours["extensions"]["durableTask"]["hubName"]
