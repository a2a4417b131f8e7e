"""Dataclasses to and from JSON: the one place that knows how models meet the wire.

A model field's JSON name is its own name unless its metadata says otherwise (``{WIRE: "from"}``);
the ``extra`` field holds what a response carried that the model does not know (a newer server
is never an error). Requests leave out ``None`` fields (and ``UNSET`` ones), except fields marked
``KEEP_NULL`` (``null`` means something there, e.g. "back to the default").
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import datetime
from typing import Any, TypeVar, Union

T = TypeVar("T")
WIRE = "wire"  # field metadata: the JSON name (default: the field's own); None: not on the wire
EXTRA = {WIRE: None}  # metadata of the ``extra`` field
KEEP_NULL = {"keep_null": True}  # metadata of a request field whose None is sent as null


class _Unset:
    """Not given (unlike ``None``, which is JSON ``null``)."""

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


def wire_name(f: dataclasses.Field[Any]) -> str | None:
    """The JSON name of a field; ``None`` for a field that is not on the wire."""
    return f.metadata.get(WIRE, f.name)  # type: ignore[no-any-return]


def wire_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """A model's fields by JSON name."""
    out = {}
    for f in dataclasses.fields(cls):
        name = wire_name(f)
        if name is not None:
            out[name] = f
    return out


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def decode(cls: type[T], data: Any) -> T:
    """``data`` (parsed JSON) as a ``cls``; raises ``TypeError``/``ValueError`` if it does not
    fit (a required member missing, a timestamp that is not one)."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    model: type = cls  # (functools.cache wants it hashable: a class is)
    hints = type_hints(model)
    kwargs: dict[str, Any] = {}
    known = wire_fields(cls)
    for name, f in known.items():
        if name in data:
            kwargs[f.name] = convert(hints[f.name], data[name])
    if any(f.name == "extra" for f in dataclasses.fields(cls)):  # type: ignore[arg-type]
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
    return cls(**kwargs)


def _fits(tp: Any, value: Any) -> bool:
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    if tp is datetime:
        return isinstance(value, str)
    origin = typing.get_origin(tp)
    if origin is list:
        return isinstance(value, list)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return True


def convert(tp: Any, value: Any) -> Any:
    """A JSON value as the type ``tp`` (dataclasses, datetimes, lists and maps of them,
    unions)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        if isinstance(value, str) and str in typing.get_args(tp):
            return value  # a request's `datetime | str` time stays the caller's text
        for arg in typing.get_args(tp):
            if arg is not type(None) and _fits(arg, value):
                return convert(arg, value)
        return value
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(tp)
        return [convert(item, v) for v in value]
    if origin is dict and isinstance(value, dict):
        _, item = typing.get_args(tp)
        return {k: convert(item, v) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return decode(tp, value)
    if tp is datetime and isinstance(value, str):
        return parse_time(value)
    return value


class TooDeepError(ValueError):
    """A value nested too deeply to encode (Python's recursion limit, ~450 levels); the API
    itself takes JSON of at most 100 levels."""


def to_json(value: Any) -> Any:
    """A request's value (a payload, say) as JSON data; ``TooDeepError`` if it cannot be."""
    return _to_json(value, full=False)


def _to_json(value: Any, *, full: bool) -> Any:
    try:
        return _json_of(value, full=full)
    except RecursionError:
        raise TooDeepError("the value nests arrays/objects too deeply to encode (the API "
                           "takes JSON of at most 100 levels)") from None


def _json_of(value: Any, *, full: bool) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_json(value) if full else encode(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: the API needs an offset")
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list | tuple):
        return [_json_of(v, full=full) for v in value]
    if isinstance(value, dict):
        return {k: _json_of(v, full=full) for k, v in value.items()}
    return value


def encode(obj: Any) -> dict[str, Any]:
    """A request model as JSON: ``UNSET`` fields left out, ``None`` ones too unless
    ``keep_null``; members in ``extra`` are sent as they are (the server refuses unknown
    ones with a 400 naming them, and accepts those a newer server knows)."""
    out: dict[str, Any] = {}
    for name, f in wire_fields(type(obj)).items():
        value = getattr(obj, f.name)
        if value is UNSET or (value is None and not f.metadata.get("keep_null")):
            continue
        out[name] = _to_json(value, full=False)
    for name, value in (getattr(obj, "extra", None) or {}).items():
        out.setdefault(name, _to_json(value, full=False))
    return out


def as_json(obj: Any) -> dict[str, Any]:
    """A response model back as the JSON it came from: every field, ``extra`` included."""
    out: dict[str, Any] = {}
    for name, f in wire_fields(type(obj)).items():
        value = getattr(obj, f.name)
        out[name] = None if value is UNSET else _to_json(value, full=True)
    out.update(getattr(obj, "extra", None) or {})
    return out
