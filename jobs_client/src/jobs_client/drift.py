"""Does the client still fit the API? ``check(document)`` compares the client with an OpenAPI
document of the API (``GET /api/openapi.json``, or ``JobsClient.openapi()``):

- every operation of the document has a client method (``operations.OPERATIONS``) or a stated
  reason to be left out (``NOT_IN_CLIENT``), and every client operation is in the document;
- both ``JobsClient`` and ``AsyncJobsClient`` have that method;
- the query parameters the client can send are the operation's, both ways;
- the model of a request body and of every 2xx body has exactly the schema's properties, both
  ways, down through nested models (a ``oneOf``/``anyOf`` schema counts the properties of all
  its branches).

It returns the differences as sentences; an empty list means no drift.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from ._codec import type_hints, wire_fields
from .aio import AsyncJobsClient
from .client import JobsClient
from .operations import AHEAD_OF_SERVER, NOT_IN_CLIENT, OPERATIONS, Operation

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
Doc = dict[str, Any]


def resolve(document: Doc, node: Any) -> Any:
    """Follow local ``$ref``s (``#/components/...``)."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def properties(document: Doc, schema: Any) -> dict[str, Any] | None:
    """The properties an object schema allows (all branches of oneOf/anyOf/allOf); ``None``
    if it describes no object with properties."""
    schema = resolve(document, schema)
    if not isinstance(schema, dict):
        return None
    found: dict[str, Any] | None = None
    if isinstance(schema.get("properties"), dict):
        found = dict(schema["properties"])
    for key in ("oneOf", "anyOf", "allOf"):
        for branch in schema.get(key, []):
            more = properties(document, branch)
            if more is not None:
                found = {**more, **(found or {})}
    return found


def _value_schema(document: Doc, schema: Any) -> Any:
    """The object schema of a field's values: itself, or inside an array or a map
    (``additionalProperties``)."""
    schema = resolve(document, schema)
    if isinstance(schema, dict) and "items" in schema:
        return _value_schema(document, schema["items"])
    if isinstance(schema, dict) and "properties" not in schema and \
            isinstance(schema.get("additionalProperties"), dict):
        return _value_schema(document, schema["additionalProperties"])
    return schema


def _nested_model(tp: Any) -> type | None:
    """The dataclass a field holds (itself, in a list or a map, or optional)."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    for arg in typing.get_args(tp):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


class _Checker:
    def __init__(self, document: Doc) -> None:
        self.document = document
        self.problems: list[str] = []
        self.seen: set[tuple[type, int]] = set()

    def model(self, cls: type, schema: Any, where: str) -> None:
        """``cls``'s fields against ``schema``'s properties, both ways, then nested models."""
        resolved = resolve(self.document, schema)
        if (cls, id(resolved)) in self.seen:
            return
        self.seen.add((cls, id(resolved)))
        props = properties(self.document, resolved)
        if props is None:
            self.problems.append(f"{where}: the document has no object properties for the "
                                 f"client model {cls.__name__}")
            return
        fields = wire_fields(cls)
        for name in sorted(props.keys() - fields.keys()):
            self.problems.append(f"{where}.{name}: in the document, not in the client model "
                                 f"{cls.__name__}")
        for name in sorted(fields.keys() - props.keys()):
            self.problems.append(f"{where}.{name}: in the client model {cls.__name__}, not in "
                                 "the document")
        hints = type_hints(cls)
        for name in sorted(props.keys() & fields.keys()):
            nested = _nested_model(hints[fields[name].name])
            if nested is not None:
                self.model(nested, _value_schema(self.document, props[name]), f"{where}.{name}")

    def operation(self, path: str, method: str, item: Doc, spec: Operation) -> None:
        op = item[method]
        where = f"{method.upper()} {path}"
        for cls in (JobsClient, AsyncJobsClient):
            if not callable(getattr(cls, spec.method, None)):
                self.problems.append(f"{where}: {cls.__name__} has no method {spec.method}()")
        params = [resolve(self.document, p) for p in (*item.get("parameters", []),
                                                      *op.get("parameters", []))]
        query = {p["name"] for p in params if p.get("in") == "query"}
        for name in sorted(query - spec.query):
            self.problems.append(f"{where}: query parameter {name!r} in the document, not in "
                                 f"the client's {spec.method}()")
        for name in sorted(spec.query - query):
            self.problems.append(f"{where}: query parameter {name!r} in the client's "
                                 f"{spec.method}(), not in the document")
        body = resolve(self.document, op.get("requestBody"))
        schema = _json_schema(self.document, body)
        if (schema is None) != (spec.request is None):
            self.problems.append(f"{where}: the document has {'no' if schema is None else 'a'} "
                                 f"request body, the client's {spec.method}() "
                                 f"{'sends one' if schema is None else 'sends none'}")
        elif spec.request is not None:
            self.model(spec.request, schema, f"{where} body")
        if spec.response is None:
            return
        for status, response in sorted(op.get("responses", {}).items()):
            if not status.startswith("2"):
                continue
            schema = _json_schema(self.document, resolve(self.document, response))
            if schema is None:
                self.problems.append(f"{where} {status}: no JSON body in the document, the "
                                     f"client reads a {spec.response.__name__}")
            else:
                self.model(spec.response, schema, f"{where} {status}")


def _json_schema(document: Doc, node: Any) -> Any:
    if not isinstance(node, dict):
        return None
    media = node.get("content", {}).get("application/json")
    return None if media is None else media.get("schema")


def document_operations(document: Doc) -> dict[tuple[str, str], Doc]:
    """``(method, path)`` -> the path item, for every operation of the document."""
    return {(method, path): item for path, item in document.get("paths", {}).items()
            for method in METHODS if method in item}


def check(document: Doc, operations: dict[tuple[str, str], Operation] | None = None,
          left_out: dict[tuple[str, str], str] | None = None,
          ahead: frozenset[tuple[str, str]] | None = None) -> list[str]:
    """The differences between the client and ``document`` (empty: none). The tables default
    to the client's own (``jobs_client.operations``)."""
    operations = OPERATIONS if operations is None else operations
    left_out = NOT_IN_CLIENT if left_out is None else left_out
    ahead = AHEAD_OF_SERVER if ahead is None else ahead
    checker = _Checker(document)
    served = document_operations(document)
    for key, item in sorted(served.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        method, path = key
        if key in ahead:
            checker.problems.append(f"{method.upper()} {path}: the document has it now: remove "
                                    "it from AHEAD_OF_SERVER")
        if key in operations:
            checker.operation(path, method, item, operations[key])
        elif key not in left_out:
            checker.problems.append(f"{method.upper()} {path}: in the document, no client "
                                    "method (add it to OPERATIONS, or to NOT_IN_CLIENT with "
                                    "the reason)")
    for method, path in sorted(operations.keys() - served.keys() - ahead):
        checker.problems.append(f"{method.upper()} {path}: the client's "
                                f"{operations[(method, path)].method}() has no operation in "
                                "the document")
    for method, path in sorted(left_out.keys() - served.keys()):
        checker.problems.append(f"{method.upper()} {path}: in NOT_IN_CLIENT but not in the "
                                "document any more")
    return checker.problems
