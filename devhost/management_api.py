"""The Durable Functions HTTP management API, as the real ``DurableOrchestrationClient`` calls it.

Served twice: under ``/durabletask/<token>/`` (the client's ``rpcBaseUrl``, no key, like the
extension's local RPC endpoint) and under ``/runtime/webhooks/durabletask/`` (the public webhook
URLs of ``create_check_status_response``; these require the key as ``code`` or header).

The extension's RPC endpoint listens on a loopback port of its own; devhost serves it on the
app's port, which ``--host`` may open to the network and any web page can POST to. So its path
carries a token derived from the key (``rpc_prefix``): only the app (its binding JSON) and the
key's holders know it, and without it ``/durabletask/...`` is a 404 (before, anyone reaching
the port could terminate, purge or raise events on the slot orchestrators without the key).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from . import history as h
from .durable_engine import (
    DurableEngine,
    InstanceExists,
    InstanceGone,
    InstanceNotFound,
    OrchestratorNotFound,
)
from .instance_store import COMPLETED, FAILED, TERMINATED, InstanceRecord

RPC_PREFIX = "/durabletask/"
WEBHOOK_PREFIX = "/runtime/webhooks/durabletask/"
TASK_HUB_QUERY = "taskHub={hub}&connection=Storage&code={key}"


def rpc_prefix(key: str) -> str:
    """The RPC API's path prefix: ``/durabletask/`` and a token only the key's holders know."""
    token = hashlib.sha256(f"devhost-rpc:{key}".encode()).hexdigest()[:32]
    return f"{RPC_PREFIX}{token}/"


def client_binding(base: str, hub: str, key: str) -> dict[str, Any]:
    """The JSON the extension passes to a ``durableClient`` input binding."""
    webhook = f"{base}{WEBHOOK_PREFIX}"
    query = TASK_HUB_QUERY.format(hub=hub, key=key)
    instance = f"{webhook}instances/INSTANCEID"
    return {
        "taskHubName": hub,
        "creationUrls": {
            "createNewInstancePostUri":
                f"{webhook}orchestrators/{{functionName}}[/{{instanceId}}]?code={key}",
            "createAndWaitOnNewInstancePostUri":
                f"{webhook}orchestrators/{{functionName}}[/{{instanceId}}]"
                f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&code={key}",
        },
        "managementUrls": {
            "id": "INSTANCEID",
            "statusQueryGetUri": f"{instance}?{query}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instance}?{query}",
            "restartPostUri": f"{instance}/restart?{query}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
        },
        "baseUrl": webhook.rstrip("/"),
        "requiredQueryStringParameters": f"code={key}",
        "rpcBaseUrl": f"{base}{rpc_prefix(key)}",
        "httpBaseUrl": "",
    }


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    return default if value is None else value.lower() == "true"


def status_json(record: InstanceRecord, show_input: bool = True, show_history: bool = False,
                show_history_output: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": record.name,
        "instanceId": record.instance_id,
        "runtimeStatus": record.status,
        "customStatus": record.custom_status,
        "output": record.output,
        "createdTime": record.created_time,
        "lastUpdatedTime": record.last_updated_time,
    }
    if show_input:
        out["input"] = record.input
    if show_history:
        events = []
        for ev in record.history:
            if ev["EventType"] in (h.ORCHESTRATOR_STARTED, h.ORCHESTRATOR_COMPLETED):
                continue
            item = h.describe(ev)
            if not show_history_output:
                item.pop("Result", None)
            events.append(item)
        out["historyEvents"] = events
    return out


class ManagementApi:
    def __init__(self, engine: DurableEngine, base_url: str, hub: str, key: str) -> None:
        self.engine = engine
        self.base_url = base_url
        self.hub = hub
        self.key = key

    def add_routes(self, app: web.Application, prefix: str) -> None:
        app.router.add_post(prefix + "orchestrators/{name}", self.start)
        app.router.add_post(prefix + "orchestrators/{name}/{instance_id}", self.start)
        app.router.add_get(prefix + "instances", self.list_instances)
        app.router.add_get(prefix + "instances/", self.list_instances)
        app.router.add_delete(prefix + "instances", self.purge_many)
        app.router.add_delete(prefix + "instances/", self.purge_many)
        app.router.add_get(prefix + "instances/{instance_id}", self.get_status)
        app.router.add_delete(prefix + "instances/{instance_id}", self.purge)
        app.router.add_post(prefix + "instances/{instance_id}/raiseEvent/{event}", self.raise_event)
        app.router.add_post(prefix + "instances/{instance_id}/terminate", self.terminate)

    def payload(self, instance_id: str) -> dict[str, str]:
        urls = client_binding(self.base_url, self.hub, self.key)["managementUrls"]
        return {k: v.replace("INSTANCEID", instance_id) for k, v in urls.items()}

    @staticmethod
    async def _json_body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return None
        return json.loads(raw)

    async def start(self, request: web.Request) -> web.Response:
        try:
            value = await self._json_body(request)
        except ValueError:
            return web.json_response({"ExceptionMessage": "Invalid JSON input."}, status=400)
        try:
            instance_id = self.engine.start_instance(
                request.match_info["name"], request.match_info.get("instance_id"), value,
                request.query.get("version"),
            )
        except OrchestratorNotFound as exc:
            return web.json_response(
                {"Message": "One or more of the arguments submitted is incorrect",
                 "ExceptionMessage": str(exc)}, status=400)
        except InstanceExists as exc:  # as the extension answers: 500, not 409
            return web.json_response(
                {"Message": "An error has occurred.", "ExceptionMessage": str(exc),
                 "ExceptionType": "System.InvalidOperationException"}, status=500)
        payload = self.payload(instance_id)
        return web.json_response(payload, status=202, headers={
            "Location": payload["statusQueryGetUri"], "Retry-After": "10"})

    async def get_status(self, request: web.Request) -> web.Response:
        record = self.engine.records.get(request.match_info["instance_id"])
        if record is None:
            return web.Response(status=404, content_type="application/json")
        body = status_json(record, _flag(request, "showInput", True), _flag(request, "showHistory"),
                           _flag(request, "showHistoryOutput"))
        code = 200 if record.status in (COMPLETED, FAILED, TERMINATED) else 202
        if record.status == FAILED and _flag(request, "returnInternalServerErrorOnFailure"):
            code = 500
        headers = {} if code != 202 else {"Location": str(request.url), "Retry-After": "10"}
        return web.json_response(body, status=code, headers=headers)

    def _matching(self, request: web.Request) -> list[InstanceRecord]:
        statuses = {s for s in request.query.get("runtimeStatus", "").split(",") if s}
        prefix = request.query.get("instanceIdPrefix", "")
        since = request.query.get("createdTimeFrom")
        until = request.query.get("createdTimeTo")
        out = []
        for record in self.engine.records.values():
            created = h.parse_ts(record.created_time)
            if statuses and record.status not in statuses:
                continue
            if prefix and not record.instance_id.startswith(prefix):
                continue
            if since and created < h.parse_ts(since):
                continue
            if until and created > h.parse_ts(until):
                continue
            out.append(record)
        return out

    async def list_instances(self, request: web.Request) -> web.Response:
        show_input = _flag(request, "showInput")
        body = [status_json(r, show_input) for r in self._matching(request)]
        return web.json_response(body)

    async def purge(self, request: web.Request) -> web.Response:
        if self.engine.purge(request.match_info["instance_id"]):
            return web.json_response({"instancesDeleted": 1})
        return web.json_response({"instancesDeleted": 0}, status=404)

    async def purge_many(self, request: web.Request) -> web.Response:
        deleted = sum(self.engine.purge(r.instance_id) for r in self._matching(request))
        return web.json_response({"instancesDeleted": deleted}, status=200 if deleted else 404)

    async def raise_event(self, request: web.Request) -> web.Response:
        try:
            value = await self._json_body(request)
        except ValueError:
            return web.json_response("Only application/json request content is supported",
                                     status=400)
        try:
            # The extension stores the posted JSON token serialized; the Python client posts an
            # already-encoded string, hence the double encoding (SDK issue #295), kept as is.
            self.engine.raise_event(request.match_info["instance_id"], request.match_info["event"],
                                    json.dumps(value))
        except InstanceNotFound:
            return web.json_response(None, status=404)
        except InstanceGone:
            return web.json_response(None, status=410)
        return web.json_response(None, status=202)

    async def terminate(self, request: web.Request) -> web.Response:
        try:
            self.engine.terminate(request.match_info["instance_id"],
                                  request.query.get("reason", ""))
        except InstanceNotFound:
            return web.json_response(None, status=404)
        except InstanceGone:
            return web.json_response(None, status=410)
        return web.json_response(None, status=202)
