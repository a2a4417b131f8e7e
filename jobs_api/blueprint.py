"""The scheduler's functions as one Durable Functions blueprint: ``scheduler_blueprint``.

An app registers it with ``app.register_functions(scheduler_blueprint)`` on its ``df.DFApp`` (or
``func.FunctionApp``), and its own handlers with ``jobs_api.register_handlers(...)``; the
repository's ``function_app.py`` does exactly that. The blueprint holds every function the
scheduler needs: the HTTP routes under ``/api/`` (``jobs``, ``jobs/...``, ``scheduler``,
``shards``, ``timeline``, ``dashboard``, ``openapi.json``, ``maintenance/purge``), the slot
orchestrator ``jobs_slot``, its activities (``plan_cycle``, ``execute_batch``,
``publish_events``) and the keeper and purge timers. Function names are unique within an app:
an app's own function with one of these names fails indexing, loudly.

Every route needs a function key, whatever ``http_auth_level`` the registering app sets
(the blueprint states ``AuthLevel.FUNCTION`` on each route instead of inheriting the app's).
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from . import dashboard, http_api, insights, maintenance, openapi, orchestrator, starter
from .runtime import timer_schedule

scheduler_blueprint = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
bp = scheduler_blueprint
KEY = func.AuthLevel.FUNCTION
KEEPER_SCHEDULE = timer_schedule("JOBS_KEEPER_SCHEDULE", "0 */5 * * * *")
PURGE_SCHEDULE = timer_schedule("JOBS_PURGE_SCHEDULE", "0 17 3 * * *")


@bp.route(route="jobs", auth_level=KEY, methods=["POST"])
@bp.durable_client_input(client_name="client")
async def jobs_create(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.create_job)(req, client)


@bp.route(route="jobs/batch", auth_level=KEY, methods=["POST"])
@bp.durable_client_input(client_name="client")
async def jobs_batch(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.create_batch)(req, client)


@bp.route(route="jobs", auth_level=KEY, methods=["GET"])
@bp.durable_client_input(client_name="client")
async def jobs_list(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.list_jobs)(req, client)


@bp.route(route="jobs/{id}", auth_level=KEY, methods=["GET"])
@bp.durable_client_input(client_name="client")
async def jobs_get(req: func.HttpRequest,
                   client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.get_job)(req, client)


@bp.route(route="jobs/{id}", auth_level=KEY, methods=["DELETE"])
@bp.durable_client_input(client_name="client")
async def jobs_cancel(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.cancel_job)(req, client)


@bp.route(route="jobs/{id}", auth_level=KEY, methods=["PATCH"])
@bp.durable_client_input(client_name="client")
async def jobs_update(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.update_job)(req, client)


@bp.route(route="jobs/{id}/run", auth_level=KEY, methods=["POST"])
@bp.durable_client_input(client_name="client")
async def jobs_run(req: func.HttpRequest,
                   client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.run_job)(req, client)


@bp.route(route="jobs/{id}/retry", auth_level=KEY, methods=["POST"])
@bp.durable_client_input(client_name="client")
async def jobs_retry(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.retry_job)(req, client)


@bp.route(route="jobs/{id}/reschedule", auth_level=KEY, methods=["POST"])
@bp.durable_client_input(client_name="client")
async def jobs_reschedule(req: func.HttpRequest,
                          client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.reschedule_job)(req, client)


@bp.route(route="jobs/{id}/pause", auth_level=KEY, methods=["POST"])
@bp.durable_client_input(client_name="client")
async def jobs_pause(req: func.HttpRequest,
                     client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.pause_job)(req, client)


@bp.route(route="jobs/{id}/resume", auth_level=KEY, methods=["POST"])
@bp.durable_client_input(client_name="client")
async def jobs_resume(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(http_api.resume_job)(req, client)


@bp.route(route="scheduler/start", auth_level=KEY, methods=["POST"])
@bp.durable_client_input(client_name="client")
async def scheduler_start(req: func.HttpRequest,
                          client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(starter.start_route)(req, client)


@bp.route(route="scheduler", auth_level=KEY, methods=["GET"])
@bp.durable_client_input(client_name="client")
async def scheduler_status(req: func.HttpRequest,
                           client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(starter.report_route)(req, client)


@bp.route(route="jobs/{id}/history", auth_level=KEY, methods=["GET"])
@bp.durable_client_input(client_name="client")
async def jobs_history(req: func.HttpRequest,
                       client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(insights.job_history)(req, client)


@bp.route(route="shards", auth_level=KEY, methods=["GET"])
@bp.durable_client_input(client_name="client")
async def shards_list(req: func.HttpRequest,
                      client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(insights.list_shards)(req, client)


@bp.route(route="timeline", auth_level=KEY, methods=["GET"])
@bp.durable_client_input(client_name="client")
async def jobs_timeline(req: func.HttpRequest,
                        client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(insights.timeline)(req, client)


@bp.route(route="dashboard", auth_level=KEY, methods=["GET"])
async def dashboard_page(req: func.HttpRequest) -> func.HttpResponse:
    return dashboard.page(req)


@bp.route(route="openapi.json", auth_level=KEY, methods=["GET"])
async def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return openapi.document_response(req)


# Not "admin/purge": the Functions host refuses routes that start with "admin" (its own API).
@bp.route(route="maintenance/purge", auth_level=KEY, methods=["POST"])
@bp.durable_client_input(client_name="client")
async def purge_now(req: func.HttpRequest,
                    client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await http_api.guarded(maintenance.purge_now)(req, client)


@bp.timer_trigger(schedule=PURGE_SCHEDULE, arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def retention_purge(timer: func.TimerRequest,
                          client: df.DurableOrchestrationClient) -> None:
    await maintenance.purge_on_timer(client)


@bp.timer_trigger(schedule=KEEPER_SCHEDULE, arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def scheduler_keeper(timer: func.TimerRequest,
                           client: df.DurableOrchestrationClient) -> None:
    for slot in await starter.ensure_all(client):
        if slot["action"] != "already running":
            logging.info("keeper: slot %s %s", slot["slot"], slot["action"])


@bp.orchestration_trigger(context_name="context")
def jobs_slot(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield from orchestrator.jobs_slot(context))


@bp.activity_trigger(input_name="request")
async def plan_cycle(request: dict) -> dict:  # type: ignore[type-arg]
    return await orchestrator.plan_cycle(request)


@bp.activity_trigger(input_name="batch")
async def execute_batch(batch: dict) -> dict:  # type: ignore[type-arg]
    return await orchestrator.execute_batch(batch)


@bp.activity_trigger(input_name="request")
async def publish_events(request: dict) -> dict:  # type: ignore[type-arg]
    return await orchestrator.publish_events(request)
