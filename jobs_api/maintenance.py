"""Retention: purge finished shard blobs and orchestration history (being built)."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from .problems import ApiProblem


async def purge_now(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    raise ApiProblem(501, "not-built", "Not built yet", "purge")


async def purge_on_timer(client: df.DurableOrchestrationClient) -> None:
    return None
