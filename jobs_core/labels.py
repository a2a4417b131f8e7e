"""Labels: a job's small string -> string map, for people and for filtering (``GET /api/jobs
?label=team:billing``), carried in its events. Limits (each one a 400 naming ``labels``):

- at most ``MAX_LABELS`` labels;
- a key is 1-63 characters of letters, digits, ``_``, ``-`` and ``.``, starting with a letter
  or a digit (``LABEL_KEY``);
- a value is a string of at most ``MAX_LABEL_VALUE_CHARS`` characters without control
  characters (``CONTROL_CLASS``: C0, DEL, C1, U+2028, U+2029), possibly empty.

A filter is ``key:value`` (that value) or ``key`` (any value); several filters must all match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .errors import InvalidLabelsError as InvalidLabelsError  # (re-exported: their home was here)

MAX_LABELS = 16
MAX_LABEL_VALUE_CHARS = 128
MAX_LABEL_FILTERS = 8
LABEL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
# control characters: C0, DEL, C1 (U+0085 is a line end to many readers) and the line and
# paragraph separators U+2028/U+2029 (line ends to JavaScript before ES2019, and to
# str.splitlines); as regular-expression text for both Python and JSON Schema
CONTROL_CLASS = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029"
NO_CONTROL_PATTERN = f"^[^{CONTROL_CLASS}]*$"
_FILTER_ITEM = rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,62}}(:[^,{CONTROL_CLASS}]{{0,128}})?"
# GET /api/jobs?label=...: comma-separated filters (what parse_label_filter accepts)
LABEL_FILTER_PATTERN = f"^{_FILTER_ITEM}(,{_FILTER_ITEM}){{0,{MAX_LABEL_FILTERS - 1}}}$"
_CONTROL = re.compile(f"[{CONTROL_CLASS}]")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (``CONTROL_CLASS``)."""
    return _CONTROL.search(text) is not None


Labels = dict[str, str]
LabelFilter = dict[str, str | None]  # key -> the value it must have (None: any value)


def parse_labels(value: object) -> Labels | None:
    """The labels of a request (``None`` or ``{}``: none), checked against the limits."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidLabelsError('labels must be an object of strings, e.g. {"team": "billing"}')
    if len(value) > MAX_LABELS:
        raise InvalidLabelsError(f"at most {MAX_LABELS} labels, got {len(value)}")
    out: Labels = {}
    for key, text in value.items():
        _check_key(key)
        if not isinstance(text, str):
            raise InvalidLabelsError(f"label {key!r} must be a string, got "
                                     f"{type(text).__name__}")
        if len(text) > MAX_LABEL_VALUE_CHARS or _CONTROL.search(text):
            raise InvalidLabelsError(f"label {key!r}: a value is at most "
                                     f"{MAX_LABEL_VALUE_CHARS} characters, without control "
                                     "characters")
        out[key] = text
    return out or None


def parse_label_filter(values: Iterable[str]) -> LabelFilter:
    """``key:value`` or ``key`` filters (query parameter ``label``, repeatable)."""
    out: LabelFilter = {}
    for raw in values:
        key, sep, text = raw.partition(":")
        _check_key(key, what="label filter")
        if len(text) > MAX_LABEL_VALUE_CHARS or _CONTROL.search(text):
            raise InvalidLabelsError(f"label filter {key!r}: a value is at most "
                                     f"{MAX_LABEL_VALUE_CHARS} characters, without control "
                                     "characters", field="label")
        if key in out:  # (the last one won: every filter must match, so none could)
            raise InvalidLabelsError(f"label filter {key!r} is given twice: a job has one "
                                     "value per label", field="label")
        out[key] = text if sep else None
    if len(out) > MAX_LABEL_FILTERS:
        raise InvalidLabelsError(f"at most {MAX_LABEL_FILTERS} label filters", field="label")
    return out


def matches(labels: Mapping[str, str] | None, wanted: LabelFilter) -> bool:
    if not wanted:
        return True
    have = labels or {}
    return all(key in have and (text is None or have[key] == text)
               for key, text in wanted.items())


def _check_key(key: object, *, what: str = "label") -> None:
    if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
        raise InvalidLabelsError(
            f"{what} key {key!r} must be 1-63 letters, digits, '_', '-' or '.', starting with "
            "a letter or a digit", field="label" if what != "label" else "labels")
