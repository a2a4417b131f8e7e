"""Your own job handlers, in your own module: a ``HandlerRegistry`` and functions registered on it
(sync or async, one argument: the ``JobContext``). ``function_app.py`` hands the registry to the
scheduler with ``jobs_api.register_handlers(invoices.registry)``.
"""

from __future__ import annotations

from typing import Any

from jobs_api import HandlerRegistry, JobContext, PermanentJobError

registry = HandlerRegistry()


@registry.handler("render_invoice", timeout_seconds=30)
async def render_invoice(ctx: JobContext) -> dict[str, Any]:
    """Payload ``{"number": "...", "lines": [{"qty": n, "price": p}, ...]}``: the invoice total.
    Use ``ctx.job_id`` and ``ctx.run`` as the idempotency key of any side effect downstream."""
    payload = ctx.payload or {}
    lines = payload.get("lines")
    if not isinstance(lines, list) or not lines:
        raise PermanentJobError("an invoice needs at least one line")  # no retry can fix it
    total = sum(float(line["qty"]) * float(line["price"]) for line in lines)
    return {"invoice": payload.get("number"), "total": round(total, 2), "attempt": ctx.attempt}
