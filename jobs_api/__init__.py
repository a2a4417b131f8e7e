"""jobs_api: the Azure Functions side of the scheduler (HTTP API, orchestrator, activities).

``function_app.py`` only wires these functions to triggers. ``jobs_core`` never imports
``azure.functions``; this package is the one place that does.
"""
