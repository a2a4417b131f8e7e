"""Read endpoints for operators and the dashboard: shard summaries and a due/finished timeline
(being built)."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from .problems import ApiProblem


async def list_shards(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    raise ApiProblem(501, "not-built", "Not built yet", "shards")


async def timeline(req: func.HttpRequest,
                   client: df.DurableOrchestrationClient) -> func.HttpResponse:
    raise ApiProblem(501, "not-built", "Not built yet", "timeline")


async def job_history(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    raise ApiProblem(501, "not-built", "Not built yet", "history")
