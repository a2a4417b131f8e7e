"""The Functions app: the scheduler's blueprint, and this app's own job handlers.

An app of your own looks the same (README, "Add it to your own Functions app"): it registers
``jobs_api.scheduler_blueprint`` and hands its handler registry to ``jobs_api.register_handlers``.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

import jobs_api
import sample_handlers

jobs_api.register_handlers(sample_handlers.registry)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(jobs_api.scheduler_blueprint)
