"""GET /api/openapi.json: the OpenAPI 3.1 document of the HTTP API (being built)."""

from __future__ import annotations

import azure.functions as func

from .problems import problem_dict, problem_response


def document_response(req: func.HttpRequest) -> func.HttpResponse:
    return problem_response(problem_dict(501, "not-built", "Not built yet", "openapi"))
