"""Driving the dashboard in Debian's chromium through Playwright, and reading what it shows.

Playwright's own browser download cannot work here (closed network), so the browser is the
``chromium`` package (``scripts/bootstrap.sh`` installs it) launched through ``executable_path``.
The flags keep it off the network: without the background-networking ones, Chromium's own
connections are refused and logged.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Request,
    expect,
    sync_playwright,
)

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 1000}
WAIT_MS = 20_000  # generous: the 2 cores are shared with other test runs
expect.set_options(timeout=WAIT_MS)
# Recorded in the page before its own script runs (an init script is not subject to its CSP).
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""
JOB_ROWS = """() => [...document.querySelectorAll('[data-testid=job-row]')].map((r) => ({
  id: r.querySelector('[data-testid=job-open]').textContent,
  handler: r.querySelector('[data-col=handler]').textContent,
  status: r.querySelector('[data-col=status]').textContent,
  attempts: r.querySelector('[data-col=attempts]').textContent,
  runs: r.querySelector('[data-col=runs]').textContent,
}))"""
SHARD_ROWS = """(cols) => Object.fromEntries(
  [...document.querySelectorAll('[data-testid=shard-row]')].map((r) => [
    r.querySelector('[data-col=name]').textContent,
    Object.fromEntries(cols.map((c) => [c, r.querySelector(`[data-col=${c}]`).textContent]))]))"""
TEST_IDS = """(prefix) => Object.fromEntries([...document.querySelectorAll('[data-testid]')]
  .filter((e) => e.dataset.testid.startsWith(prefix))
  .map((e) => [e.dataset.testid.slice(prefix.length), e.textContent]))"""


def find_chromium() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@contextmanager
def chromium_context(executable: str, profile_dir: Path) -> Iterator[BrowserContext]:
    """A headless chromium with a fresh profile (``--user-data-dir``), closed on exit."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport=VIEWPORT)  # type: ignore[arg-type]
        try:
            yield context
        finally:
            context.close()


@dataclass
class Dashboard:
    """One open dashboard page, with everything it logged."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    @classmethod
    def open(cls, context: BrowserContext, url: str) -> Dashboard:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        dash = cls(page)
        page.add_init_script(CSP_WATCH)
        page.on("console", dash._on_console)
        page.on("pageerror", lambda exc: dash.console_errors.append(f"page error: {exc}"))
        page.on("dialog", dash._on_dialog)
        page.on("request", lambda request: dash.requests.append(request))
        page.goto(url)
        dash.wait_refreshed(0)
        return dash

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _on_dialog(self, dialog: Dialog) -> None:
        # confirm() of cancel / run now is accepted; anything else (an alert from injected
        # markup, say) is recorded and fails the test
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.accept()

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.__cspViolations || []"))

    # ---- refreshes ---------------------------------------------------------------------------
    def refreshes(self) -> int:
        return int(self.page.get_by_test_id("refresh-status").get_attribute("data-refreshes")
                   or 0)

    def wait_refreshed(self, after: int) -> None:
        """Wait until a refresh that started after ``after`` refreshes has finished."""
        self.page.wait_for_function(
            """(n) => { const s = document.getElementById('refresh-status');
                        return Number(s.dataset.refreshes) > n && s.dataset.state === 'idle'; }""",
            arg=after, timeout=WAIT_MS)

    def pause(self) -> None:
        """Stop auto-refresh, and wait until no refresh is in flight."""
        self.page.get_by_test_id("auto-refresh").uncheck()
        self.page.wait_for_function(
            "() => document.getElementById('refresh-status').dataset.state === 'idle'")

    def then_refreshed(self, action: Any) -> None:
        """Run ``action`` (a click that refreshes the page) and wait for that refresh."""
        before = self.refreshes()
        action()
        self.wait_refreshed(before)

    def refresh(self) -> None:
        self.then_refreshed(self.page.get_by_test_id("refresh-now").click)

    # ---- what the page shows -----------------------------------------------------------------
    def job_rows(self) -> list[dict[str, str]]:
        return list(self.page.evaluate(JOB_ROWS))

    def shard_rows(self, columns: list[str]) -> dict[str, dict[str, str]]:
        return dict(self.page.evaluate(SHARD_ROWS, columns))

    def texts(self, prefix: str) -> dict[str, str]:
        """``data-testid`` -> text of every element whose test id starts with ``prefix``."""
        return dict(self.page.evaluate(TEST_IDS, prefix))

    def chart_totals(self) -> dict[str, str | None]:
        chart = self.page.get_by_test_id("timeline-chart")
        return {name: chart.get_attribute(f"data-{name}")
                for name in ("points", "due-total", "finished-total")}

    def filter_jobs(self, *, status: str = "", handler: str = "", due_from: str = "",
                    due_to: str = "", per_page: str = "25", label: str = "") -> None:
        page = self.page
        page.get_by_test_id("filter-status").select_option(status)
        page.get_by_test_id("filter-handler").fill(handler)
        page.get_by_test_id("filter-label").fill(label)
        page.get_by_test_id("filter-due-from").fill(due_from)
        page.get_by_test_id("filter-due-to").fill(due_to)
        page.get_by_test_id("filter-limit").select_option(per_page)
        self.then_refreshed(page.get_by_test_id("filter-apply").click)

    def open_job(self, job_id: str) -> None:
        row = self.page.locator(f"[data-testid=job-row][data-job-id='{job_id}']")
        row.get_by_test_id("job-open").click()
        self.page.locator(f"[data-testid=job-detail][data-job-id='{job_id}']").wait_for()
