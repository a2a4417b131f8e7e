"""jobs_api: the Azure Functions side of the scheduler (HTTP API, orchestrator, activities).

An app's ``function_app.py`` uses it like this (the repository's own does exactly that)::

    import azure.durable_functions as df
    import jobs_api
    import my_handlers                                  # your module: a HandlerRegistry

    jobs_api.register_handlers(my_handlers.registry)   # the handlers jobs may name
    app = df.DFApp()
    app.register_functions(jobs_api.scheduler_blueprint)

``jobs_core`` never imports ``azure.functions``; this package is the one place that does.
"""

from jobs_core import HandlerRegistry, JobContext, PermanentJobError

from .blueprint import scheduler_blueprint
from .registry import register_handlers

__all__ = [
    "HandlerRegistry", "JobContext", "PermanentJobError", "register_handlers",
    "scheduler_blueprint",
]
