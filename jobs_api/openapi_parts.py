"""Building blocks of the OpenAPI document: schema and operation helpers, the shared error
responses (RFC 9457 problems) and headers."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
Doc = dict[str, Any]
JSON = "application/json"
PROBLEM = "application/problem+json"
TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
HEADERS = "#/components/headers/"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


def obj(properties: dict[str, Schema], required: list[str] | None = None,
        closed: bool = False, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


def json_body(schema: Doc, description: str, **extra: Any) -> Doc:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def problem(description: str) -> Doc:
    return {"description": description, "content": {PROBLEM: {"schema": ref("Problem")}}}


def header(name: str) -> Doc:
    return {"$ref": HEADERS + name}


def use(name: str) -> Doc:
    return {"$ref": f"#/components/responses/{name}"}


def shared_responses() -> dict[str, Doc]:
    return {
        "BadRequest": problem("Invalid input (the field at fault is in `field`); nothing was "
                              "written"),
        "Unauthorized": {"description": "Missing or wrong function key (answered by the "
                                        "Functions host, without a body)"},
        "NotFound": problem("No job with this id (it may have been purged)"),
        "Conflict": problem("The job's state does not allow the operation, or its shard blob "
                            "is full"),
        "TooLarge": problem("The request body, the payload or the batch is larger than the "
                            "limit"),
        "UnsupportedMediaType": problem("The body is not sent as application/json"),
        "StorageUnavailable": {**problem("The job store could not be reached; retry later"),
                               "headers": {"Retry-After": header("RetryAfter")}},
    }


def errors(*codes: int) -> dict[str, Doc]:
    names = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 409: "Conflict",
             413: "TooLarge", 415: "UnsupportedMediaType", 503: "StorageUnavailable"}
    return {str(code): use(names[code]) for code in (*codes, 401)}


def operation(op_id: str, summary: str, responses: dict[str, Doc], **extra: Any) -> Doc:
    return {"operationId": op_id, "summary": summary, "responses": responses, **extra}


def query(name: str, schema: Doc, description: str) -> Doc:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}
