"""Which queues a job's ``notify`` may name: the operator's allow-list (JOBS_NOTIFY_QUEUES), never
a Durable task hub's own queues."""

from __future__ import annotations

import re

from .errors import InvalidNotifyTargetError
from .limits import QUEUE_NAME_PATTERN
from .settings import SettingsError

QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)

# the queues of a Durable task hub (``<hub>-control-00``.., ``<hub>-workitems``): never a target
TASK_HUB_QUEUE = re.compile(r"^.+-(control-\d{2}|workitems)$")


def _allowed(allow_list: str) -> list[str]:
    return [entry.strip() for entry in allow_list.split(",") if entry.strip()]


def check_notify_allow_list(allow_list: str) -> None:
    """JOBS_NOTIFY_QUEUES must hold queue names and prefixes ending in ``*``."""
    for entry in _allowed(allow_list):
        name = entry[:-1] if entry.endswith("*") else entry
        if not (QUEUE_NAME.fullmatch(name) or (entry.endswith("*") and
                re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*-?", name))):
            raise SettingsError(
                f"JOBS_NOTIFY_QUEUES entry {entry!r} is neither a storage queue name (3-63 "
                "lowercase letters, digits and single hyphens) nor a prefix ending in '*'")


def parse_notify(value: object, allow_list: str = "") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        raise InvalidNotifyTargetError(
            f"notify {value!r} is not a valid storage queue name (3-63 lowercase letters, "
            "digits and single hyphens)")
    if TASK_HUB_QUEUE.fullmatch(value):
        raise InvalidNotifyTargetError(
            f"notify {value!r} names a Durable task hub queue (*-control-NN, *-workitems): "
            "those are never a target")
    allowed = _allowed(allow_list)
    if not any(value == entry or (entry.endswith("*") and value.startswith(entry[:-1]))
               for entry in allowed):
        raise InvalidNotifyTargetError(
            f"notify {value!r} is not an allowed queue: the operator lists the allowed names "
            f"and prefixes in JOBS_NOTIFY_QUEUES (now: {', '.join(allowed) or 'none'})")
    return value
