"""The built-in ``http`` handler: a job that calls a URL under an allow-listed base.

Payload (checked when the job is scheduled or updated; a 400 names ``payload``)::

    {"url": "https://api.example.com/v1/orders/42/ship",   # under a JOBS_HTTP_ALLOWED_BASES base
     "method": "POST",                                      # default POST
     "headers": {"Content-Type": "application/json"},       # optional, strings
     "json": {...} | "body": "text",                        # optional, not both
     "timeout_seconds": 30,                                 # per request, default 30, max 300
     "audience": "api://my-api"}                            # optional: a managed-identity token,
                                                            # for an audience its base names

Outcome: a 2xx answer is success, and the job's result is ``{"status", "content_type",
"body", "truncated"}`` (the body as text, cut at ``MAX_BODY_CHARS``; at most ``MAX_READ_BYTES``
of the (decoded) answer is read, the rest is never downloaded). 429 and 5xx are retried,
no sooner than their ``Retry-After`` (``RetryLaterError``); a connection error or a timeout is
retried like any failure; any other answer (3xx: redirects are never followed, and 4xx) fails
the job for good (``PermanentJobError``).

Security: only URLs under a base named by the ``JOBS_HTTP_ALLOWED_BASES`` setting
(comma-separated, e.g. ``https://api.example.com/v1/``), compared on scheme, host, port and
whole path segments; no user info, no dot segments (also encoded, or with an encoded
backslash), no fragment. With no base allowed, no job may use the handler. Hop-by-hop and
``Host`` headers are refused. With ``audience`` the ``Authorization`` header is the app's
managed-identity token (``DefaultAzureCredential``), never one stored in the payload, and only
for an audience that a base covering the URL names after it (``https://api.example.com/v1/
api://orders``; an ``http://`` base may name none unless its host is a loopback address): a
caller must not be able to send the app's token for another resource (its storage account)
to an allowed API that could echo it back.
"""

from __future__ import annotations

import codecs
import email.utils
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from .errors import InvalidPayloadError
from .handlers import HandlerRegistry, JobContext, PermanentJobError, RetryLaterError
from .settings import SettingsError

HANDLER_NAME = "http"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_TIMEOUT_SECONDS = 300.0
MAX_BODY_CHARS = 4000
MAX_READ_BYTES = 4 * MAX_BODY_CHARS + 4  # enough for MAX_BODY_CHARS characters of UTF-8, and one
MAX_HEADERS = 32
FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                               "keep-alive", "upgrade", "te", "trailer",
                               "proxy-authorization"})
PAYLOAD_KEYS = frozenset({"url", "method", "headers", "json", "body", "timeout_seconds",
                          "audience"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
TokenSource = Callable[[str], Awaitable[str]]  # audience -> bearer token
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class AllowedBase:
    """One entry of ``JOBS_HTTP_ALLOWED_BASES``: ``URL [AUDIENCE ...]``."""

    scheme: str
    netloc: str  # host:port, the host in lower case
    prefix: str  # the path, ending in '/'
    audiences: frozenset[str]  # the token audiences its URLs may get (without /.default)

    def covers(self, scheme: str, netloc: str, path: str) -> bool:
        return scheme == self.scheme and netloc == self.netloc and \
            (path + "/").startswith(self.prefix)


def _audience(raw: str) -> str:
    return raw.removesuffix("/.default")


def parse_allowed_bases(text: str) -> list[AllowedBase]:
    """``JOBS_HTTP_ALLOWED_BASES``: comma-separated entries, each a base URL followed by the
    token audiences (space-separated) that jobs calling URLs under it may ask for."""
    bases = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        raw, *audiences = entry.split()
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
                or parts.password or parts.query or parts.fragment:
            raise SettingsError(f"JOBS_HTTP_ALLOWED_BASES: {raw!r} is not an http(s) base URL "
                                "like https://api.example.com/v1/")
        if audiences and parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
            raise SettingsError(f"JOBS_HTTP_ALLOWED_BASES: {raw!r} names token audiences but "
                                "is not https: the token would cross the network in clear")
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        bases.append(AllowedBase(parts.scheme, _netloc(parts), path,
                                 frozenset(_audience(a) for a in audiences)))
    return bases


def _netloc(parts: Any) -> str:
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname.lower()}:{port}"


class HttpHandler:
    """The ``http`` handler over one allow-list; ``tokens`` gets managed-identity tokens."""

    def __init__(self, allowed_bases: str, tokens: TokenSource | None = None) -> None:
        self.bases = parse_allowed_bases(allowed_bases)
        self._tokens = tokens

    def register(self, registry: HandlerRegistry) -> None:
        registry.handler(HANDLER_NAME, timeout_seconds=MAX_TIMEOUT_SECONDS + 10,
                         check_payload=self.check)(self.run)

    # --- checking ---------------------------------------------------------------------------
    def check(self, payload: Any) -> None:
        """Raises ``InvalidPayloadError`` (400) for a payload this handler would refuse."""
        if not isinstance(payload, Mapping):
            raise InvalidPayloadError('the http handler needs a payload object with "url"')
        unknown = sorted(set(payload) - PAYLOAD_KEYS)
        if unknown:
            raise InvalidPayloadError(f"unknown http payload keys {unknown}; allowed: "
                                      f"{sorted(PAYLOAD_KEYS)}")
        bases = self._check_url(payload.get("url"))
        method = payload.get("method", "POST")
        if method not in METHODS:
            raise InvalidPayloadError(f"http method must be one of {list(METHODS)}")
        if "json" in payload and "body" in payload:
            raise InvalidPayloadError('give "json" or "body", not both')
        if "body" in payload and not isinstance(payload["body"], str):
            raise InvalidPayloadError('"body" must be a string (use "json" for JSON)')
        headers = payload.get("headers", {})
        if not isinstance(headers, Mapping) or len(headers) > MAX_HEADERS or not all(
                isinstance(k, str) and _HEADER_NAME.fullmatch(k) and isinstance(v, str)
                and "\n" not in v and "\r" not in v for k, v in headers.items()):
            raise InvalidPayloadError(f'"headers" must be an object of at most {MAX_HEADERS} '
                                      "header names and string values")
        refused = sorted(k for k in headers if k.lower() in FORBIDDEN_HEADERS or (
            k.lower() == "authorization" and "audience" in payload))
        if refused:
            raise InvalidPayloadError(f"headers {refused} may not be set")
        timeout = payload.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or \
                not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise InvalidPayloadError(f'"timeout_seconds" must be in (0, {MAX_TIMEOUT_SECONDS:g}]')
        audience = payload.get("audience")
        if audience is not None and (not isinstance(audience, str) or not audience.strip()):
            raise InvalidPayloadError('"audience" must be a non-empty string')
        # any entry covering the URL may name it (a host-wide base may precede a path of it
        # that names audiences: the order of the entries does not matter)
        if audience is not None and not any(_audience(audience) in b.audiences for b in bases):
            base = bases[-1]  # (the most specific: the longest prefix)
            raise InvalidPayloadError(
                f"audience {audience!r} is not allowed for "
                f"{base.scheme}://{base.netloc}{base.prefix}: JOBS_HTTP_ALLOWED_BASES names the "
                "audiences a base may get the app's token for, after it (e.g. "
                "'https://api.example.com/v1/ api://orders')")

    def _check_url(self, url: object) -> list[AllowedBase]:
        """The entries covering ``url``, the longest prefix last (at least one)."""
        if not isinstance(url, str) or len(url) > 2048:
            raise InvalidPayloadError('"url" must be a string of at most 2048 characters')
        if not self.bases:
            raise InvalidPayloadError("no URL is allowed: the JOBS_HTTP_ALLOWED_BASES setting "
                                      "names no base")
        try:
            parts = urlsplit(url)
            netloc = _netloc(parts) if parts.hostname else ""
        except ValueError:
            raise InvalidPayloadError(f"{url!r} is not a valid URL") from None
        path = unquote(parts.path)
        segments = path.split("/")
        if parts.username or parts.password or parts.fragment or "." in segments or \
                ".." in segments or "\\" in path:
            raise InvalidPayloadError("the url may not have user info, a fragment or dot "
                                      "segments")
        covering = [b for b in self.bases if b.covers(parts.scheme, netloc, parts.path)]
        if covering:
            return sorted(covering, key=lambda b: len(b.prefix))
        raise InvalidPayloadError(f"{url!r} is not under a base allowed by "
                                  "JOBS_HTTP_ALLOWED_BASES")

    # --- running ----------------------------------------------------------------------------
    async def run(self, ctx: JobContext) -> dict[str, Any]:
        payload = ctx.payload
        try:
            self.check(payload)  # (the allow-list may have changed since it was scheduled)
        except InvalidPayloadError as exc:
            raise PermanentJobError(str(exc)) from None
        headers = dict(payload.get("headers", {}))
        if payload.get("audience"):
            if self._tokens is None:
                raise PermanentJobError("this app has no managed identity to get a token with")
            headers["Authorization"] = f"Bearer {await self._tokens(payload['audience'])}"
        timeout = aiohttp.ClientTimeout(total=float(payload.get("timeout_seconds",
                                                                DEFAULT_TIMEOUT_SECONDS)))
        kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": False}
        if "json" in payload:
            kwargs["json"] = payload["json"]
        elif "body" in payload:
            kwargs["data"] = payload["body"].encode()
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.request(payload.get("method", "POST"), payload["url"],
                                **kwargs) as response:
            text, more = await _read_text(response)
            status = response.status
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            content_type = response.headers.get("Content-Type")
        if 200 <= status < 300:
            return {"status": status, "content_type": content_type,
                    "body": text[:MAX_BODY_CHARS],
                    "truncated": more or len(text) > MAX_BODY_CHARS}
        summary = f"HTTP {status} from {payload['url']}: {text[:300]}"
        if status == 429 or status >= 500:
            raise RetryLaterError(summary, retry_after)
        raise PermanentJobError(summary + (" (redirects are not followed)"
                                           if 300 <= status < 400 else ""))


async def _read_text(response: aiohttp.ClientResponse) -> tuple[str, bool]:
    """At most ``MAX_READ_BYTES`` of the answer as text, and whether more was left unread
    (never downloaded: a huge or highly compressed answer must not fill the worker's
    memory)."""
    data = bytearray()
    while len(data) < MAX_READ_BYTES:
        chunk = await response.content.read(MAX_READ_BYTES - len(data))
        if not chunk:
            break
        data += chunk
    more = not response.content.at_eof() and bool(await response.content.read(1))
    try:
        codec = codecs.lookup(response.charset or "utf-8")
    except LookupError:
        codec = codecs.lookup("utf-8")
    if not codec._is_text_encoding:  # base64, hex, zlib, rot13: their decoder fails on this
        codec = codecs.lookup("utf-8")
    decoder = codec.incrementaldecoder(errors="replace")
    return decoder.decode(bytes(data), final=not more), more


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def managed_identity_tokens() -> TokenSource:
    """Tokens of the app's managed identity (or the developer's login, locally)."""
    credential: Any = None

    async def token(audience: str) -> str:
        nonlocal credential
        if credential is None:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential()
        scope = audience if audience.endswith("/.default") else f"{audience}/.default"
        return str((await credential.get_token(scope)).token)

    return token
