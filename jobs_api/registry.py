"""The handlers this process can run: one registry, filled by the app's ``function_app.py``.

``register_handlers(my_handlers.registry)`` adds the handlers of an app's own module. The
scheduler, the executors and the OpenAPI document all read ``handlers``; a job can only name a
handler found here (an unknown name is a ``400``, whose detail lists the registered names).
"""

from __future__ import annotations

from types import ModuleType

from jobs_core import HandlerRegistry

handlers = HandlerRegistry()


def register_handlers(*registries: HandlerRegistry) -> None:
    """Make the handlers of each registry runnable as jobs (call it at import time, in
    ``function_app.py``, before the app serves anything). Every handler registered in them so
    far is added; a name that already names another handler raises ``ValueError`` and adds
    nothing of that registry (registering the same registry again changes nothing)."""
    for registry in registries:
        if isinstance(registry, ModuleType):
            raise TypeError(
                f"register_handlers takes a HandlerRegistry, not the module {registry.__name__!r}:"
                f" pass its registry, e.g. register_handlers({registry.__name__}.registry)")
        handlers.include(registry)
