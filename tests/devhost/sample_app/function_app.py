"""Sample DFApp exercising every devhost feature (used by tests/devhost)."""

import json
import os
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
_flaky_calls: dict[str, int] = {}


@app.route(route="orchestrators/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    try:
        instance_id = await client.start_new(
            req.route_params["name"], req.route_params.get("instance_id"), payload
        )
    except Exception as exc:
        return func.HttpResponse(str(exc), status_code=409)
    return client.create_check_status_response(req, instance_id)


@app.route(route="instances/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    st = await client.get_status(req.route_params["instance_id"], show_history=True)
    if not st:
        return func.HttpResponse("not found", status_code=404)
    body = st.to_json()
    # The HTTP API names it historyEvents; the SDK keeps unknown fields as attributes.
    body["history"] = getattr(st, "historyEvents", None)
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="instances", methods=["GET"])
@app.durable_client_input(client_name="client")
async def list_all(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    statuses = await client.get_status_all()
    return func.HttpResponse(json.dumps([s.instance_id for s in statuses]),
                             mimetype="application/json")


@app.route(route="instances/{instance_id}/events/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def send_event(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    try:
        await client.raise_event(req.route_params["instance_id"], req.route_params["event"],
                                 req.get_json())
    except Exception as exc:
        return func.HttpResponse(str(exc), status_code=410)
    return func.HttpResponse(status_code=202)


@app.route(route="instances/{instance_id}/terminate", methods=["POST"])
@app.durable_client_input(client_name="client")
async def terminate(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    await client.terminate(req.route_params["instance_id"], req.params.get("reason", "bye"))
    return func.HttpResponse(status_code=202)


@app.route(route="instances/{instance_id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def purge(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    result = await client.purge_instance_history(req.route_params["instance_id"])
    return func.HttpResponse(json.dumps({"deleted": result.instances_deleted}),
                             mimetype="application/json")


@app.route(route="echo/{a}/{b:int}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({
            "method": req.method, "route": dict(req.route_params), "query": dict(req.params),
            "header": req.headers.get("x-sample"), "body": req.get_body().decode(),
        }),
        status_code=201, mimetype="application/json", headers={"x-echo": "yes"},
    )


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin ok")


@app.route(route="whoami", methods=["GET"])
def whoami(req: func.HttpRequest) -> func.HttpResponse:
    """The process that served the request (``--workers N`` spreads requests over N)."""
    return func.HttpResponse(json.dumps({"pid": os.getpid()}), mimetype="application/json")


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
def startup_timer(timer: func.TimerRequest) -> None:
    marker = os.environ.get("SAMPLE_TIMER_MARKER")
    if marker:
        with Path(marker).open("a") as fh:
            fh.write(f"fired past_due={timer.past_due}\n")


@app.activity_trigger(input_name="x")
def double(x: int) -> int:
    return x * 2


@app.activity_trigger(input_name="message")
def fail_always(message: str) -> str:
    raise ValueError(f"boom: {message}")


@app.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    if _flaky_calls[key] < 3:
        raise RuntimeError(f"attempt {_flaky_calls[key]} failed")
    return f"ok after {_flaky_calls[key]}"


@app.activity_trigger(input_name="i")
def pid_of(i: int) -> int:
    return os.getpid()


@app.orchestration_trigger(context_name="context")
def pids(context: df.DurableOrchestrationContext):
    n = context.get_input()
    return (yield context.task_all([context.call_activity("pid_of", i) for i in range(n)]))


@app.activity_trigger(input_name="x")
async def async_echo(x):
    return {"echo": x}


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    n = context.get_input()
    results = yield context.task_all([context.call_activity("double", i) for i in range(n)])
    echoed = yield context.call_activity("async_echo", sum(results))
    return echoed


@app.orchestration_trigger(context_name="context")
def eternal(context: df.DurableOrchestrationContext):
    """Fans out, waits for an event or a short timer, continues as new for a few generations."""
    state = context.get_input() or {"generation": 0, "events": [], "total": 0}
    values = yield context.task_all([context.call_activity("double", i) for i in range(3)])
    state["total"] += sum(values)
    context.set_custom_status({"generation": state["generation"]})
    timer = context.create_timer(context.current_utc_datetime + timedelta(milliseconds=300))
    ping = context.wait_for_external_event("ping")
    winner = yield context.task_any([timer, ping])
    if winner == ping:
        timer.cancel()
        state["events"].append(ping.result)
    if state["generation"] >= 3:
        return state
    state["generation"] += 1
    context.continue_as_new(state)


@app.orchestration_trigger(context_name="context")
def wait_event(context: df.DurableOrchestrationContext):
    context.set_custom_status("waiting")
    first = yield context.wait_for_external_event("go")
    context.set_custom_status("got go")
    second = yield context.wait_for_external_event("go2")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    seconds = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    return "woke"


@app.orchestration_trigger(context_name="context")
def nondeterministic(context: df.DurableOrchestrationContext):
    # Reads mutable state outside the orchestration: replay takes another branch.
    marker = Path(context.get_input())
    name = "double" if not marker.exists() else "async_echo"
    marker.touch()
    first = yield context.call_activity(name, 1)
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=50))
    return first


@app.orchestration_trigger(context_name="context")
def broken(context: df.DurableOrchestrationContext):
    yield context.call_activity("double", 1)
    raise ValueError("orchestrator exploded on purpose")


@app.orchestration_trigger(context_name="context")
def activity_failure(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("fail_always", "hello")
    except Exception as exc:
        return f"caught: {exc}"


@app.orchestration_trigger(context_name="context")
def with_retry(context: df.DurableOrchestrationContext):
    opts = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=4)
    result = yield context.call_activity_with_retry("flaky", opts, context.instance_id)
    try:
        yield context.call_activity_with_retry(
            "fail_always", df.RetryOptions(50, 2), "retry")
    except Exception as exc:
        return {"flaky": result, "final_error": str(exc)}


@app.activity_trigger(input_name="path")
def wait_for_file(path: str) -> str:
    """Blocks until ``path`` exists; counts its runs in ``path.runs`` (at-least-once checks)."""
    import time

    with Path(path + ".runs").open("a") as fh:
        fh.write("run\n")
    deadline = time.monotonic() + 30
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return Path(path).read_text()


@app.orchestration_trigger(context_name="context")
def blocking(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("wait_for_file", context.get_input()))


@app.orchestration_trigger(context_name="context")
def input_drift(context: df.DurableOrchestrationContext):
    # Same activity name on replay, different input: only strict mode notices.
    marker = Path(context.get_input())
    value = 2 if marker.exists() else 1
    marker.touch()
    result = yield context.call_activity("double", value)
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=50))
    return result


@app.orchestration_trigger(context_name="context")
def big_status(context: df.DurableOrchestrationContext):
    context.set_custom_status("s" * int(context.get_input()))
    yield context.call_activity("double", 1)
    return "done"


@app.orchestration_trigger(context_name="context")
def reused_timer(context: df.DurableOrchestrationContext):
    """A timer yielded a second time in a task_any: the SDK leaves it out of that WhenAny action,
    so the extension awaits the activity alone before it acts on the orchestrator's return."""
    deadline = context.create_timer(context.current_utc_datetime + timedelta(milliseconds=300))
    yield context.task_any([context.call_activity("double", 1), deadline])
    work = context.task_all([context.call_activity("wait_for_file", context.get_input())])
    finished = yield context.task_any([work, deadline])
    return "deadline" if finished is deadline else "work"


@app.orchestration_trigger(context_name="context")
def event_after_lost_wait(context: df.DurableOrchestrationContext):
    """A wait for an event that lost its task_any, then another wait for the same event: the
    extension (and the SDK) hand a raised event to the latest wait (a stack), not the oldest."""
    first = context.wait_for_external_event("go")
    yield context.task_any([first, context.call_activity("double", 1)])
    second = yield context.wait_for_external_event("go")
    return second


@app.orchestration_trigger(context_name="context")
def unsupported_beside_activity(context: df.DurableOrchestrationContext):
    """An API devhost does not emulate, beside an activity in one task_all."""
    yield context.task_all([context.call_activity("double", 1),
                            context.call_sub_orchestrator("fan_out", 1)])
    return "unreachable"
