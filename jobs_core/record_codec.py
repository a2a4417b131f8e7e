"""How a typed shard record (``records.py``) becomes the JSON object of its line and back: a
table of ``(field, wire key, kind)`` per record type, read once into a plan per type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from .model import ErrorInfo

Wire: TypeAlias = dict[str, Any]  # a record as the JSON object of its line


def ts(value: datetime) -> str:
    return value.isoformat()


def parse_ts(text: str) -> datetime:
    if not isinstance(text, str):
        raise TypeError(f"a time must be a string, not {type(text).__name__}")
    return datetime.fromisoformat(text)


def as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {type(value).__name__}")
    return value


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("expected an integer, not a boolean")
    return int(value)


def as_error(value: Any) -> ErrorInfo:
    if not isinstance(value, dict):
        raise TypeError("an error must be an object")
    return ErrorInfo(**value)


def _same(value: Any) -> Any:
    return value


# how a field's value is written (encode) and read back (decode), by kind
_ENCODE: dict[str, Callable[[Any], Any]] = {
    "str": _same, "int": _same, "time": ts, "error": ErrorInfo.to_dict, "json": _same}
_DECODE: dict[str, Callable[[Any], Any]] = {
    "str": as_str, "int": as_int, "time": parse_ts, "error": as_error, "json": _same}


class Fields:
    """Encoding and decoding from a table of ``(field, wire key, kind)``: a field without a
    default is always written (and required when read), an optional one only when not None."""

    __slots__ = ()
    OP: ClassVar[Any]  # the record's Op (records.py)
    WIRE: ClassVar[tuple[tuple[str, str, str], ...]]
    VERSION: ClassVar[int] = 2  # the version this record type is written as

    def encode(self) -> Wire:
        out: Wire = {"v": self.VERSION, "op": self.OP.value}
        for name, key, encode, _, always in _plan(type(self)):
            value = getattr(self, name)
            if value is not None:
                out[key] = encode(value)
            elif always:
                out[key] = None
        return out

    @classmethod
    def decode(cls, wire: Wire) -> Any:
        args = []
        get = wire.get
        for _, key, _, decode, required in _plan(cls):
            raw = get(key)
            if raw is not None:
                args.append(decode(raw))
            elif required and decode is not _same:
                raise KeyError(key)  # the record is invalid
            else:
                args.append(None)
        return cls(*args)


_Plan = tuple[tuple[str, str, Callable[[Any], Any], Callable[[Any], Any], bool], ...]
_PLANS: dict[type, _Plan] = {}


def _plan(cls: type) -> _Plan:
    """``WIRE`` in the order of the fields, each with its encoder, its decoder and whether it
    is required (it has no default: written even when None, and needed when read)."""
    plan = _PLANS.get(cls)
    if plan is None:
        wire = {name: (key, kind) for name, key, kind in cls.WIRE}  # type: ignore[attr-defined]
        assert set(wire) == {f.name for f in fields(cls)}, cls
        plan = _PLANS[cls] = tuple(
            (f.name, wire[f.name][0], _ENCODE[wire[f.name][1]], _DECODE[wire[f.name][1]],
             f.default is MISSING) for f in fields(cls))
    return plan


class Op(StrEnum):
    ADD = "add"
    CANCEL = "cancel"
    RUN_NOW = "run_now"
    RESCHEDULE = "reschedule"
    PAUSE = "pause"
    RESUME = "resume"
    UPDATE = "update"
    MISFIRE = "misfire"
    RETRY = "retry"
    START = "start"
    OK = "ok"
    FAIL = "fail"
    TOUCH = "touch"
    MOVE = "move"
    MOVED = "moved"
    POINTER = "ptr"
    FULL = "full"
    TAKE_OVER = "take_over"
