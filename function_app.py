"""The Functions app: thin wiring of jobs_api to triggers (see jobs_api/ for the code).

Register job handlers in jobs_api/user_handlers.py.
"""

from __future__ import annotations

import json
import logging
import os

import azure.durable_functions as df
import azure.functions as func

from jobs_api import dashboard, http_api, insights, maintenance, openapi, orchestrator, starter

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
KEEPER_SCHEDULE = os.environ.get("JOBS_KEEPER_SCHEDULE", "").strip() or "0 */5 * * * *"
PURGE_SCHEDULE = os.environ.get("JOBS_PURGE_SCHEDULE", "").strip() or "0 17 3 * * *"


@app.route(route="jobs", methods=["POST"])
@app.durable_client_input(client_name="client")
async def jobs_create(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.create_job)(req, client)


@app.route(route="jobs/batch", methods=["POST"])
@app.durable_client_input(client_name="client")
async def jobs_batch(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.create_batch)(req, client)


@app.route(route="jobs", methods=["GET"])
@app.durable_client_input(client_name="client")
async def jobs_list(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.list_jobs)(req, client)


@app.route(route="jobs/{id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def jobs_get(req: func.HttpRequest,
                   client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.get_job)(req, client)


@app.route(route="jobs/{id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def jobs_cancel(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.cancel_job)(req, client)


@app.route(route="jobs/{id}", methods=["PATCH"])
@app.durable_client_input(client_name="client")
async def jobs_update(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.update_job)(req, client)


@app.route(route="jobs/{id}/run", methods=["POST"])
@app.durable_client_input(client_name="client")
async def jobs_run(req: func.HttpRequest,
                   client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.run_job)(req, client)


@app.route(route="jobs/{id}/retry", methods=["POST"])
@app.durable_client_input(client_name="client")
async def jobs_retry(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.retry_job)(req, client)


@app.route(route="jobs/{id}/reschedule", methods=["POST"])
@app.durable_client_input(client_name="client")
async def jobs_reschedule(req: func.HttpRequest,
                          client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.reschedule_job)(req, client)


@app.route(route="jobs/{id}/pause", methods=["POST"])
@app.durable_client_input(client_name="client")
async def jobs_pause(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.pause_job)(req, client)


@app.route(route="jobs/{id}/resume", methods=["POST"])
@app.durable_client_input(client_name="client")
async def jobs_resume(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.resume_job)(req, client)


@app.route(route="scheduler/start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def scheduler_start(req: func.HttpRequest,
                          client: df.DurableOrchestrationClient) -> func.HttpResponse:
    slots = await starter.ensure_all(client)
    return func.HttpResponse(json.dumps({"slots": slots}), mimetype="application/json")


@app.route(route="scheduler", methods=["GET"])
@app.durable_client_input(client_name="client")
async def scheduler_status(req: func.HttpRequest,
                           client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(await starter.report(client)),
                             mimetype="application/json")


@app.route(route="jobs/{id}/history", methods=["GET"])
@app.durable_client_input(client_name="client")
async def jobs_history(req: func.HttpRequest,
                       client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(insights.job_history)(req, client)


@app.route(route="shards", methods=["GET"])
@app.durable_client_input(client_name="client")
async def shards_list(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(insights.list_shards)(req, client)


@app.route(route="timeline", methods=["GET"])
@app.durable_client_input(client_name="client")
async def jobs_timeline(req: func.HttpRequest,
                        client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(insights.timeline)(req, client)


@app.route(route="dashboard", methods=["GET"])
async def dashboard_page(req: func.HttpRequest) -> func.HttpResponse:
    return dashboard.page(req)


@app.route(route="openapi.json", methods=["GET"])
async def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return openapi.document_response(req)


# Not "admin/purge": the Functions host refuses routes that start with "admin" (its own API).
@app.route(route="maintenance/purge", methods=["POST"])
@app.durable_client_input(client_name="client")
async def purge_now(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(maintenance.purge_now)(req, client)


@app.timer_trigger(schedule=PURGE_SCHEDULE, arg_name="timer", run_on_startup=False)
@app.durable_client_input(client_name="client")
async def retention_purge(timer: func.TimerRequest,
                          client: df.DurableOrchestrationClient) -> None:
    await maintenance.purge_on_timer(client)


@app.timer_trigger(schedule=KEEPER_SCHEDULE, arg_name="timer", run_on_startup=False)
@app.durable_client_input(client_name="client")
async def scheduler_keeper(timer: func.TimerRequest,
                           client: df.DurableOrchestrationClient) -> None:
    for slot in await starter.ensure_all(client):
        if slot["action"] != "already running":
            logging.info("keeper: slot %s %s", slot["slot"], slot["action"])


@app.orchestration_trigger(context_name="context")
def jobs_slot(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield from orchestrator.jobs_slot(context))


@app.activity_trigger(input_name="request")
async def plan_cycle(request: dict) -> dict:  # type: ignore[type-arg]
    return await orchestrator.plan_cycle(request)


@app.activity_trigger(input_name="batch")
async def execute_batch(batch: dict) -> dict:  # type: ignore[type-arg]
    return await orchestrator.execute_batch(batch)


@app.activity_trigger(input_name="request")
async def publish_events(request: dict) -> dict:  # type: ignore[type-arg]
    return await orchestrator.publish_events(request)
