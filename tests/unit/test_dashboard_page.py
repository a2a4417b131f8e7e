"""The dashboard page as served (no host, no browser): headers, CSP nonce, self-containment,
no HTML sinks for API data, and that the page ships in the deployment payload.
The page's behaviour in a real browser is tested in tests/e2e/test_dashboard.py."""

from __future__ import annotations

import re
from pathlib import Path

import azure.functions as func

from jobs_api import dashboard
from tests.deploy.funcignore import ignored, parse

ROOT = Path(__file__).resolve().parents[2]


def serve() -> func.HttpResponse:
    req = func.HttpRequest(method="GET", url="http://localhost/api/dashboard?code=k", body=b"",
                           headers={}, params={"code": "k"})
    return dashboard.page(req)


def nonce_of(resp: func.HttpResponse) -> str:
    csp = resp.headers["Content-Security-Policy"]
    match = re.search(r"script-src 'nonce-([A-Za-z0-9+/=]+)'", csp)
    assert match, csp
    return match.group(1)


def test_headers_protect_the_key_in_the_url() -> None:
    resp = serve()
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_each_response_has_its_own_nonce_on_exactly_the_inline_blocks() -> None:
    first, second = serve(), serve()
    n1, n2 = nonce_of(first), nonce_of(second)
    assert n1 != n2
    assert f"style-src 'nonce-{n1}'" in first.headers["Content-Security-Policy"]
    html = first.get_body().decode()
    assert dashboard.NONCE_PLACEHOLDER not in html
    assert re.findall(r"<script\b[^>]*>", html) == [f'<script nonce="{n1}">']
    assert re.findall(r"<style\b[^>]*>", html) == [f'<style nonce="{n1}">']


def test_page_is_self_contained() -> None:
    html = dashboard.template()
    assert not re.search(r"https?://", html, re.IGNORECASE)  # no other host, not even a link
    assert re.findall(r"\b(?:src|href|action)\s*=\s*[\"']?([^\"'\s>]*)", html) == ["data:,"]
    assert not re.search(r"@import|url\(", html)  # CSS pulls nothing in either


def test_api_data_never_reaches_an_html_sink() -> None:
    html = dashboard.template()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "srcdoc"):
        assert sink not in html, sink
    # no inline event-handler attributes in the markup (the CSP would refuse them anyway)
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html)


def test_the_page_ships_in_the_deployment_payload() -> None:
    rules = parse((ROOT / ".funcignore").read_text())
    rel = dashboard.PAGE_FILE.relative_to(ROOT).as_posix()
    assert rel == "jobs_api/static/dashboard.html"
    assert not ignored(rules, rel)
