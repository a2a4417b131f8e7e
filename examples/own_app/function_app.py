"""An app of your own that runs the scheduler: its blueprint, your handlers, your functions.

Copy ``jobs_api/`` and ``jobs_core/`` next to this file and add the scheduler's requirements to
yours (README, "Add it to your own Functions app"); nothing inside them needs editing.
"""

from __future__ import annotations

import azure.functions as func

import invoices
import jobs_api

jobs_api.register_handlers(invoices.registry)  # jobs may name these handlers, and only these

# Your app's own default auth level applies to your routes only: the scheduler's routes always
# need a function key.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(jobs_api.scheduler_blueprint)


@app.route(route="hello", methods=["GET"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    """One of your own functions, next to the scheduler's."""
    return func.HttpResponse("hello from your own app")
