"""The key blobs' format: names, records and what makes a blob final (``key_index.py`` is the
index built on them).

Format
------
Append blobs ``keys/p{part:03d}-{index:04d}.jsonl`` with ``part = crc32(key) % partitions`` and
``index`` = 0, 1, 2, ... (rollover). ``partitions`` is part of the storage format: every process
sharing the storage must use the same value, forever. Records are JSON lines in blocks that
start with ``b"\\n"`` (like the shard logs, see ``records.py``; readers replay whole lines only
and skip malformed ones)::

    {"v":1,"op":"key","k":<key>,"id":<job id>,"fp":<fingerprint>,"at":<iso time>}
    {"v":1,"op":"seal","at":<iso time>}

``fp`` is :func:`fingerprint` of (handler, payload). A blob is *final* once a seal record is in
it (every record after the first seal is void) or once it refused a block (50,000-block limit;
nothing can follow). Blob ``index + 1`` is only ever written after blob ``index`` is final, so
the valid claims of a partition have one total order: (blob index, offset).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zlib
from datetime import UTC, datetime
from typing import Any

from . import records
from .errors import UnsupportedRecordVersionError

log = logging.getLogger(__name__)

PREFIX = "keys/"
KEY_FORMAT_VERSION = 1  # of the records in key blobs (the shard log has its own version)
_NAME = re.compile(r"^keys/p(\d{3,})-(\d{4,})\.jsonl$")


def fingerprint(handler: str, payload: Any) -> str:
    """First 32 hex chars of sha256 over canonical JSON of ``[handler, payload]``."""
    canonical = json.dumps([handler, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


def blob_name(part: int, index: int) -> str:
    return f"{PREFIX}p{part:03d}-{index:04d}.jsonl"


def parse_blob_name(name: str) -> tuple[int, int] | None:
    """(part, index) of a key blob name, or None for anything else."""
    match = _NAME.fullmatch(name)
    return None if match is None else (int(match[1]), int(match[2]))


def claim_record(key: str, fp: str, job_id: str, at: datetime) -> records.Wire:
    return {"v": KEY_FORMAT_VERSION, "op": "key", "k": key, "id": job_id, "fp": fp,
            "at": records.ts(at)}


def seal_record(at: datetime) -> records.Wire:
    return {"v": KEY_FORMAT_VERSION, "op": "seal", "at": records.ts(at)}


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_record(raw: bytes, name: str) -> dict[str, Any] | None:
    """A valid key or seal record (with ``at`` parsed), or None for anything else."""
    line = raw.strip()
    if not line:
        return None
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not an object")
        version = record.get("v")
        if version != KEY_FORMAT_VERSION:
            if isinstance(version, int) and version > KEY_FORMAT_VERSION:
                raise UnsupportedRecordVersionError(version, name)
            raise ValueError(f"unknown version {version!r}")
        op = record.get("op")
        record["at"] = aware(records.parse_ts(record["at"]))
        if op == "key":
            if not all(isinstance(record.get(f), str) for f in ("k", "id", "fp")):
                raise ValueError("a key record needs k, id and fp")
        elif op != "seal":
            raise ValueError(f"unknown op {op!r}")
    except UnsupportedRecordVersionError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("key blob %s: skipped a malformed record (%s): %.80r", name, exc, line)
        return None
    return record


def summarize_blob(data: bytes, name: str) -> tuple[bool, datetime | None]:
    """(has a seal record, newest ``at`` of any record) of a whole key blob."""
    sealed = False
    newest: datetime | None = None
    for raw in data.split(b"\n"):
        try:
            record = parse_record(raw, name)
        except UnsupportedRecordVersionError:
            return False, None  # written by a newer release: leave it alone
        if record is None:
            continue
        sealed = sealed or record["op"] == "seal"
        newest = record["at"] if newest is None else max(newest, record["at"])
    return sealed, newest
