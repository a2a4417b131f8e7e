"""GET /api/dashboard: one self-contained HTML page over the JSON API.

The page is ``static/dashboard.html`` (inline CSS and vanilla JS, no external URL, no build
step). Each response gets a fresh CSP nonce that the page's one ``<style>`` and one ``<script>``
carry, and a Content-Security-Policy that allows those two blocks, fetches to this origin and
nothing else. The function key reaches the page in its URL (``?code=``), so the page is never
cached and never sends a referrer. The page reads the key from its own URL and sends it as
``x-functions-key`` to the JSON routes.
"""

from __future__ import annotations

import base64
import functools
import secrets
from pathlib import Path

import azure.functions as func

PAGE_FILE = Path(__file__).resolve().parent / "static" / "dashboard.html"
NONCE_PLACEHOLDER = "{{NONCE}}"


@functools.cache
def template() -> str:
    """The page with its nonce placeholders (read once per process)."""
    text = PAGE_FILE.read_text(encoding="utf-8")
    if text.count(NONCE_PLACEHOLDER) != 2:
        raise RuntimeError(f"{PAGE_FILE} must carry {NONCE_PLACEHOLDER} on its one <style> "
                           "and its one <script>")
    return text


def new_nonce() -> str:
    return base64.b64encode(secrets.token_bytes(18)).decode("ascii")


def content_security_policy(nonce: str) -> str:
    return "; ".join([
        "default-src 'none'",
        f"script-src 'nonce-{nonce}'",
        f"style-src 'nonce-{nonce}'",
        "connect-src 'self'",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


def security_headers(nonce: str) -> dict[str, str]:
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": content_security_policy(nonce),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def render() -> tuple[str, dict[str, str]]:
    """The page body and its headers, with a fresh nonce."""
    nonce = new_nonce()
    return template().replace(NONCE_PLACEHOLDER, nonce), security_headers(nonce)


def page(req: func.HttpRequest) -> func.HttpResponse:
    body, headers = render()
    return func.HttpResponse(body, status_code=200, mimetype="text/html", charset="utf-8",
                             headers=headers)
