"""Job ids and blob names. A job id names its shard blob, so finding a job never needs an index.

    job id:      j20261122T1400-s003-0000-1a2b3c4d5e6f7a8b
                  bucket start   slot index  random
    shard blob:  shards/s003/20261122T1400-0000.jsonl
    claim blob:  claims/s003
"""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import limits
from .errors import InvalidJobIdError

SHARD_PREFIX = "shards/"
CLAIM_PREFIX = "claims/"
SHARD_SUFFIX = ".jsonl"
BUCKET_FORMAT = "%Y%m%dT%H%M"
MAX_SLOTS = 1000
MAX_INDEX = 9999

JOB_ID_PATTERN = re.compile(limits.JOB_ID_PATTERN)
SHARD_NAME_PATTERN = re.compile(r"^shards/s(\d{3})/(\d{8}T\d{4})-(\d{4})\.jsonl$")


@dataclass(frozen=True, slots=True, order=True)
class ShardKey:
    """One time bucket of one slot; its records live in blobs index 0, 1, ..."""

    bucket: datetime
    slot: int

    def blob(self, index: int) -> str:
        return f"{self.prefix}{index:04d}{SHARD_SUFFIX}"

    @property
    def prefix(self) -> str:
        return f"{slot_prefix(self.slot)}{self.bucket.strftime(BUCKET_FORMAT)}-"


@dataclass(frozen=True, slots=True)
class ShardBlob:
    key: ShardKey
    index: int

    @property
    def name(self) -> str:
        return self.key.blob(self.index)


def slot_prefix(slot: int) -> str:
    return f"{SHARD_PREFIX}s{slot:03d}/"


def claim_blob(slot: int) -> str:
    return f"{CLAIM_PREFIX}s{slot:03d}"


def bucket_of(moment: datetime, bucket_minutes: int) -> datetime:
    """Start of the bucket holding ``moment`` (buckets are aligned to midnight UTC)."""
    moment = moment.astimezone(UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = (moment - day) // timedelta(minutes=1)
    return day + timedelta(minutes=minutes - minutes % bucket_minutes)


def new_job_id(shard: ShardBlob, token: str | None = None) -> str:
    token = token or secrets.token_hex(8)
    bucket = shard.key.bucket.strftime(BUCKET_FORMAT)
    return f"j{bucket}-s{shard.key.slot:03d}-{shard.index:04d}-{token}"


def with_index(job_id: str, index: int) -> str:
    """The same id moved to another blob of its shard (used when a blob is full)."""
    shard = parse_job_id(job_id)
    return new_job_id(ShardBlob(shard.key, index), job_id.rsplit("-", 1)[1])


def parse_job_id(job_id: str) -> ShardBlob:
    match = JOB_ID_PATTERN.fullmatch(job_id) if isinstance(job_id, str) else None
    if match is None:
        raise InvalidJobIdError(str(job_id))
    bucket = _parse_bucket(match.group(1))
    if bucket is None:
        raise InvalidJobIdError(job_id)
    return ShardBlob(ShardKey(bucket, int(match.group(2))), int(match.group(3)))


@functools.lru_cache(maxsize=8192)
def parse_shard_name(name: str) -> ShardBlob | None:
    match = SHARD_NAME_PATTERN.fullmatch(name)
    if match is None:
        return None
    bucket = _parse_bucket(match.group(2))
    return None if bucket is None else ShardBlob(ShardKey(bucket, int(match.group(1))),
                                                 int(match.group(3)))


@functools.lru_cache(maxsize=8192)
def _parse_bucket(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, BUCKET_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
