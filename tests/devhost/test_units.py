"""Small units of devhost: NCRONTAB, atomic instance files, route templates, indexing."""

from __future__ import annotations

import types
from datetime import UTC, datetime
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost import ncrontab
from devhost.http_triggers import build_routes, compile_template
from devhost.indexer import IndexedFunction, _index_function, find_app
from devhost.instance_store import InstanceRecord, InstanceStore


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_ncrontab_next_occurrences() -> None:
    every5 = ncrontab.parse("*/5 * * * * *")
    assert every5.next_after(at(2024, 1, 1, 0, 0, 3)) == at(2024, 1, 1, 0, 0, 5)
    assert every5.next_after(at(2024, 1, 1, 0, 0, 5)) == at(2024, 1, 1, 0, 0, 10)
    weekday_9am = ncrontab.parse("0 30 9 * * mon-fri")
    assert weekday_9am.next_after(at(2024, 1, 5, 10, 0, 0)) == at(2024, 1, 8, 9, 30, 0)
    yearly = ncrontab.parse("0 0 0 1 jan *")
    assert yearly.next_after(at(2024, 3, 1)) == at(2025, 1, 1)
    assert ncrontab.parse("00:00:10").next_after(at(2024, 1, 1)) == at(2024, 1, 1, 0, 0, 10)
    with pytest.raises(ValueError, match="6 fields"):
        ncrontab.parse("* * * * *")


def test_store_survives_torn_write(tmp_path: Path) -> None:
    store = InstanceStore(tmp_path)
    record = InstanceRecord("a/b?c", "orch", "e1", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z")
    store.save(record)
    # A kill during the next write leaves only a partial temp file behind.
    (store.dir / f".{store.path_for(record.instance_id).name}.999.tmp").write_bytes(b'{"inst')
    loaded = InstanceStore(tmp_path).load_all()
    assert loaded == {"a/b?c": record}
    assert not list(store.dir.glob(".*.tmp"))


def test_route_templates() -> None:
    assert compile_template("jobs/{id}").match("jobs/42").groupdict() == {"id": "42"}
    assert compile_template("jobs/{id}").match("jobs/42/x") is None
    assert compile_template("JOBS/{id:int}").match("jobs/x") is None
    optional = compile_template("orchestrators/{name}/{instance_id?}")
    assert optional.match("orchestrators/o").groupdict() == {"name": "o", "instance_id": None}
    assert compile_template("files/{*rest}").match("files/a/b").group("rest") == "a/b"


def test_routes_the_functions_host_reserves_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    def fn(route: str) -> IndexedFunction:
        return IndexedFunction(name=route.replace("/", "_"), trigger_type="httpTrigger",
                               trigger={"route": route, "methods": ["GET"]}, bindings=[],
                               func=print, is_async=False, trigger_param="req")

    routes = build_routes([fn("admin/purge"), fn("Runtime/x"), fn("maintenance/purge")])
    assert [r.template for r in routes] == ["maintenance/purge"]
    assert "admin_purge: The specified route conflicts" in caplog.text


def test_an_apps_blueprints_are_indexed_and_a_blueprint_alone_is_explained() -> None:
    bp = df.Blueprint()

    @bp.activity_trigger(input_name="x")
    def from_blueprint(x: int) -> int:
        return x

    module = types.ModuleType("function_app")
    module.bp = bp  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match=r"register it on an app"):
        find_app(module)

    module.app = func.FunctionApp()  # type: ignore[attr-defined]
    module.app.register_functions(bp)  # type: ignore[attr-defined]
    indexed = [_index_function(f) for f in find_app(module).get_functions()]
    assert [(f.name, f.trigger_type) for f in indexed] == [("from_blueprint", "activityTrigger")]
