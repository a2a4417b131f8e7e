"""Scheduler settings: one frozen dataclass built once from app settings (``JOBS_*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from .errors import SettingsError
from .model import RetryPolicy

__all__ = ["JobsSettings", "SettingsError"]

MIN_RETENTION_DAYS = 1 / 24  # one hour: results stay readable while clients still poll them
MAX_RETENTION_DAYS = 36_500.0  # 100 years: "keep everything" without overflowing date math


@dataclass(frozen=True, slots=True)
class JobsSettings:
    slots: int = 4  # JOBS_SLOTS: shard slots = eternal orchestrators
    bucket_minutes: int = 60  # JOBS_BUCKET_MINUTES: time covered by one shard
    max_payload_bytes: int = 64 * 1024  # JOBS_MAX_PAYLOAD_BYTES
    max_result_bytes: int = 32 * 1024  # JOBS_MAX_RESULT_BYTES
    horizon_days: int = 365  # JOBS_HORIZON_DAYS: how far ahead a job may be due
    max_past_seconds: int = 86_400  # JOBS_MAX_PAST_SECONDS: how far in the past due_at may be
    seal_blocks: int = 40_000  # JOBS_SEAL_BLOCKS: new jobs go to the next blob after this
    evacuate_blocks: int = 45_000  # JOBS_EVACUATE_BLOCKS: waiting jobs move out after this
    carry_after_hours: float = 24.0  # JOBS_CARRY_AFTER_HOURS: waiting jobs leave older buckets
    seal_bytes: int = 16 * 1024 * 1024  # JOBS_SEAL_BYTES: ... or after this size
    commit_linger_ms: float = 5.0  # JOBS_COMMIT_LINGER_MS: group-commit wait for company
    commit_max_bytes: int = 4 * 1024 * 1024  # JOBS_COMMIT_MAX_BYTES: largest append block
    batch_size: int = 200  # JOBS_BATCH_SIZE: jobs per execute batch
    max_concurrency: int = 32  # JOBS_MAX_CONCURRENCY: handlers running at once per batch
    job_timeout_seconds: float = 60.0  # JOBS_JOB_TIMEOUT_SECONDS: default per-job timeout
    claim_ttl_seconds: float = 120.0  # JOBS_CLAIM_TTL_SECONDS
    abandon_grace_seconds: float = 30.0  # JOBS_ABANDON_GRACE_SECONDS
    max_sleep_seconds: float = 60.0  # JOBS_MAX_SLEEP_SECONDS: longest planner sleep
    retention_days: float = 7.0  # JOBS_RETENTION_DAYS: finished shards and history kept
    # JOBS_NOTIFY_QUEUES: the queues a job's ``notify`` may name: comma-separated names, or
    # prefixes ending in ``*`` ("billing,orders-*"); empty: no job may name one. A task hub's
    # own queues (``*-control-NN``, ``*-workitems``) are never allowed.
    notify_queues: str = ""
    # JOBS_HTTP_ALLOWED_BASES: the URLs the built-in ``http`` handler may call: comma-separated
    # bases ("https://api.example.com/v1/"); empty: none (http_handler.py)
    http_allowed_bases: str = ""
    # JOBS_HANDLER_LIMITS: per-handler limits over the registration's, as JSON:
    # {"send_email": {"max_concurrency": 5, "max_per_second": 2}} (handler_limits.py)
    handler_limits: str = ""
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # JOBS_RETRY_*

    def __post_init__(self) -> None:
        if not 1 <= self.slots <= 999:
            raise SettingsError(f"JOBS_SLOTS must be 1..999, got {self.slots}")
        if self.bucket_minutes <= 0 or 1440 % self.bucket_minutes:
            raise SettingsError(
                f"JOBS_BUCKET_MINUTES must divide a day (e.g. 15, 60, 240), got "
                f"{self.bucket_minutes}")
        if not 1 <= self.seal_blocks <= 45_000:
            raise SettingsError("JOBS_SEAL_BLOCKS must be 1..45000 (the rest of the 50,000 "
                                "blocks is room for the outcomes of the blob's jobs)")
        if not self.seal_blocks < self.evacuate_blocks <= 49_000:
            raise SettingsError(
                f"JOBS_EVACUATE_BLOCKS must be above JOBS_SEAL_BLOCKS ({self.seal_blocks}) and "
                f"at most 49000 (the rest is room for outcomes of running jobs), got "
                f"{self.evacuate_blocks}")
        if not 1 / 60 <= self.carry_after_hours <= 24 * 365:
            raise SettingsError("JOBS_CARRY_AFTER_HOURS must be between 1/60 (a minute) and "
                                f"8760 (a year), got {self.carry_after_hours}")
        if not MIN_RETENTION_DAYS <= self.retention_days <= MAX_RETENTION_DAYS:
            raise SettingsError(
                "JOBS_RETENTION_DAYS must be between 1/24 (one hour) and 36500 days (100 "
                f"years), got {self.retention_days}")
        from .notify_targets import check_notify_allow_list  # (it imports settings)

        check_notify_allow_list(self.notify_queues)
        from .http_handler import parse_allowed_bases

        parse_allowed_bases(self.http_allowed_bases)
        from .handler_limits import parse_limit_overrides

        parse_limit_overrides(self.handler_limits)
        for name in ("max_payload_bytes", "max_result_bytes", "batch_size", "max_concurrency",
                     "horizon_days", "commit_max_bytes", "seal_bytes"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"JOBS_{name.upper()} must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobsSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "retry":
                continue
            raw = env.get(f"JOBS_{f.name.upper()}")
            if raw is not None and raw.strip():
                values[f.name] = _convert(f"JOBS_{f.name.upper()}", raw, f.type)
        retry = {}
        for f in fields(RetryPolicy):
            raw = env.get(f"JOBS_RETRY_{f.name.upper()}")
            if raw is not None and raw.strip():
                retry[f.name] = _convert(f"JOBS_RETRY_{f.name.upper()}", raw, f.type)
        if retry:
            values["retry"] = RetryPolicy(**retry)  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, raw: str, type_name: object) -> int | float | str:
    if str(type_name) == "str":
        return raw.strip()
    try:
        return int(raw) if str(type_name) == "int" else float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
