"""HTTP triggers: route templates, auth levels, and real ``azure.functions`` request/response."""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web

from .indexer import IndexedFunction
from .invoker import FunctionInvoker

log = logging.getLogger("devhost.http")
ROUTE_PREFIX = "/api/"
_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([^}?]*))?(\?)?\}")
_CONSTRAINTS = {"int": r"-?\d+", "long": r"-?\d+", "bool": r"(?:true|false)",
                "guid": r"[0-9a-fA-F-]{32,36}", "alpha": r"[A-Za-z]+"}


@dataclass
class HttpRoute:
    function: IndexedFunction
    template: str
    regex: re.Pattern[str]
    methods: frozenset[str] | None
    auth_level: str

    @property
    def literal_weight(self) -> tuple[int, int]:
        # Prefer templates with more literal segments (ASP.NET-like precedence).
        segments = self.template.split("/")
        return (sum("{" not in s for s in segments), len(segments))


def compile_template(template: str) -> re.Pattern[str]:
    pattern, pos = "", 0
    for m in _PARAM.finditer(template):
        literal = re.escape(template[pos:m.start()])
        catch_all, name, constraint, optional = m.groups()
        body = r".*" if catch_all else _CONSTRAINTS.get((constraint or "").split("(")[0], r"[^/]+")
        group = f"(?P<{name}>{body})"
        if optional or catch_all:
            if literal.endswith("/"):
                literal = literal[:-1]
                group = f"(?:/{group})?"
            else:
                group = f"{group}?" if not catch_all else group
        pattern += literal + group
        pos = m.end()
    pattern += re.escape(template[pos:])
    return re.compile(f"^{pattern}/?$", re.IGNORECASE)


RESERVED_ROUTE_PREFIXES = frozenset({"admin", "runtime"})


def build_routes(functions: list[IndexedFunction]) -> list[HttpRoute]:
    routes = []
    for fn in functions:
        if fn.trigger_type != "httpTrigger":
            continue
        template = (fn.trigger.get("route") or fn.name).strip("/")
        if template.split("/")[0].lower() in RESERVED_ROUTE_PREFIXES:
            # what the Functions host does: the function is in error, the others still run
            log.error("%s: The specified route conflicts with one or more built in routes "
                      "(a route may not start with 'admin' or 'runtime')", fn.name)
            continue
        methods = fn.trigger.get("methods")
        routes.append(HttpRoute(
            function=fn, template=template, regex=compile_template(template),
            methods=frozenset(m.upper() for m in methods) if methods else None,
            auth_level=str(fn.trigger.get("authLevel", "FUNCTION")).upper(),
        ))
    routes.sort(key=lambda r: r.literal_weight, reverse=True)
    return routes


def key_ok(request: web.Request, key: str) -> bool:
    given = request.headers.get("x-functions-key") or request.query.get("code") or ""
    return hmac.compare_digest(given.encode(), key.encode())


class HttpTriggerHandler:
    def __init__(self, routes: list[HttpRoute], invoker: FunctionInvoker, key: str) -> None:
        self.routes = routes
        self.invoker = invoker
        self.key = key

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path[len(ROUTE_PREFIX):].strip("/")
        method_mismatch = False
        for route in self.routes:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.methods is not None and request.method.upper() not in route.methods:
                method_mismatch = True
                continue
            if route.auth_level != "ANONYMOUS" and not key_ok(request, self.key):
                return web.Response(status=401)
            params = {k: v for k, v in m.groupdict().items() if v is not None}
            return await self._invoke(route, request, params)
        return web.Response(status=405 if method_mismatch else 404)

    async def _invoke(self, route: HttpRoute, request: web.Request,
                      params: dict[str, str]) -> web.StreamResponse:
        body = await request.read()
        req = func.HttpRequest(
            method=request.method.upper(),
            url=str(request.url),
            headers=dict(request.headers),
            params=query_params(request),
            route_params=params,
            body=body,
        )
        try:
            result = await self.invoker.invoke(route.function, req)
        except Exception:
            log.exception("Function '%s' raised", route.function.name)
            return web.Response(status=500)
        return to_web_response(result)


def query_params(request: web.Request) -> dict[str, str]:
    """The query as the Functions host hands it to the worker: a repeated parameter's values
    joined with commas (``StringValues.ToString()``), not only its first one, and a parameter
    whose value is empty (``?wait=``) left out (``ToRpcHttp`` skips ``IsNullOrEmpty``)."""
    joined = {key: ",".join(request.query.getall(key)) for key in request.query}
    return {key: value for key, value in joined.items() if value}


def to_web_response(result: Any) -> web.Response:
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items()}
        if not any(k.lower() == "content-type" for k in headers):
            mimetype = result.mimetype or "text/plain"
            charset = result.charset or "utf-8"
            headers["Content-Type"] = f"{mimetype}; charset={charset}"
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    if result is None:
        return web.Response(status=204)
    if isinstance(result, bytes | str):
        return web.Response(status=200, body=result if isinstance(result, bytes) else
                            result.encode(), content_type="text/plain")
    log.error("HTTP function returned unsupported type %s", type(result).__name__)
    return web.Response(status=500)
