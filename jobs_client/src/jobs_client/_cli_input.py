"""What a ``jobsctl`` user typed, read and checked before any request: numbers of seconds,
counts, labels and the payload (JSON the API can carry). A bad value is a ``UsageError``
(exit 2), never a traceback or a request the API would refuse."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from ._codec import TooDeepError, to_json

N = TypeVar("N", int, float)


class UsageError(Exception):
    pass


def _number(text: str, convert: Callable[[str], N], fits: Callable[[N], bool],
            what: str) -> N:
    """``text`` read by ``convert`` if it ``fits``; else an argparse error naming ``what``."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not fits(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def seconds(text: str) -> float:
    """A number of seconds >= 0 (a negative or infinite one was a traceback, or silently
    nothing: hunt of stop 29)."""
    return _number(text, float, lambda v: math.isfinite(v) and v >= 0,
                   "a number of seconds >= 0")


def finite(text: str) -> float:
    """A finite number (the API judges its range; inf and nan cannot even be sent)."""
    return _number(text, float, math.isfinite, "a finite number")


def some_seconds(text: str) -> float:
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give more than 0 seconds")
    return value


def count(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a whole number >= 0")


def payload(args: argparse.Namespace) -> Any:
    if args.payload_file is not None:
        try:
            with (sys.stdin if args.payload_file == "-"
                  else open(args.payload_file, encoding="utf-8")) as f:
                text = f.read()
        except UnicodeError as exc:
            raise UsageError(f"the payload file is not UTF-8 text: {exc}") from None
    elif args.payload is not None:
        text = args.payload
    else:
        return None
    too_deep = UsageError("the payload nests arrays/objects too deeply (the API takes at most "
                          "100 levels)")
    try:
        payload = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise UsageError(f"the payload is not JSON: {exc}") from None
    try:  # what the request can carry (json.loads reads 1e400 as inf, and lone surrogates)
        json.dumps(payload, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise too_deep from None
    except UnicodeEncodeError:  # (a ValueError too: first)
        raise UsageError("the payload is not Unicode text: it holds a lone surrogate escape "
                         "such as \\ud800") from None
    except ValueError:
        raise UsageError("the payload is not JSON: it holds a number too large for JSON "
                         "(such as 1e400)") from None
    try:  # (the client's encoder recurses: ~450 levels)
        to_json(payload)
    except TooDeepError:
        raise too_deep from None
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (only finite numbers are)")


def label(text: str) -> tuple[str, str]:
    key, colon, value = text.partition(":")
    if not colon:
        raise UsageError(f"--label {text!r}: write KEY:VALUE")
    return key, value
