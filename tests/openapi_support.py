"""Checking documents and real responses against the app's OpenAPI document (tests only).

``jsonschema`` ships no ``date-time`` or ``uri`` format checker without extra packages, so
both are added here: a timestamp must be RFC 3339 (with an offset), a URI must have a scheme.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import requests
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from jobs_client.drift import resolve  # (one $ref resolver: the client's drift check has it)

DOC_URI = "urn:jobs-openapi"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
                     re.IGNORECASE)
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper())  # ValueError for a day or hour that does not exist
    return True


def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme)


FORMATS = jsonschema.FormatChecker()
FORMATS.checks("date-time", raises=ValueError)(_date_time)
FORMATS.checks("uri")(_uri)


def _anchored(node: Any) -> Any:
    """A copy whose local refs (``#/...``) point into the document resource."""
    if isinstance(node, dict):
        return {k: DOC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _anchored(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_anchored(v) for v in node]
    return node


def validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A Draft 2020-12 validator for a schema taken from ``document``: its local refs
    (``#/components/schemas/...``) resolve in the document."""
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator(_anchored(schema), registry=registry,
                                           format_checker=FORMATS)


def component(document: dict[str, Any], name: str) -> jsonschema.Validator:
    return validator(document, {"$ref": f"#/components/schemas/{name}"})




def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def iter_schemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Schema Object of an OpenAPI document (under ``schema`` keys and in
    components/schemas), with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}/{key}"
            if key == "schema" and isinstance(value, dict):
                yield here, value
            elif key == "schemas" and where == "#/components":
                for name, schema in value.items():
                    yield f"{here}/{name}", schema
            else:
                yield from iter_schemas(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from iter_schemas(value, f"{where}/{i}")


def check_response(document: dict[str, Any], path: str, method: str,
                   response: requests.Response) -> Any:
    """Assert that a real response is one the document describes for ``method path``
    (status, content type, required headers, body schema); returns the parsed body."""
    op = document["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in op["responses"], (
        f"{method} {path}: status {status} is not documented: {response.text[:300]}")
    spec = resolve(document, op["responses"][status])
    for name, header in spec.get("headers", {}).items():
        header = resolve(document, header)
        if header.get("required"):
            assert name in response.headers, f"{method} {path} {status}: no {name} header"
        if name in response.headers:
            raw = response.headers[name]
            value: Any = int(raw) if header["schema"].get("type") == "integer" else raw
            validator(document, header["schema"]).validate(value)
    content = spec.get("content")
    if not content:
        return None
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    assert media in content, f"{method} {path} {status}: content type {media!r} not in " \
                             f"{sorted(content)}"
    if media == "text/html":
        return response.text
    body = response.json()
    schema = content[media].get("schema")
    if schema is not None:
        validator(document, schema).validate(body)
    return body
