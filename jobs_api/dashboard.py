"""GET /api/dashboard: one self-contained HTML page over the JSON API (being built)."""

from __future__ import annotations

import azure.functions as func

from .problems import problem_dict, problem_response


def page(req: func.HttpRequest) -> func.HttpResponse:
    return problem_response(problem_dict(501, "not-built", "Not built yet", "dashboard"))
