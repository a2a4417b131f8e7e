"""The dashboard in a real browser: Debian's headless chromium driven by Playwright, against the
app on devhost + Azurite. Jobs are scheduled through the API; the page must show what the JSON
API says, filter and page, show a job's detail, and cancel / run now through its buttons. The
last browser test saves test-artifacts/dashboard.png."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests import azurite as azurite_helpers
from tests.e2e.dashboard_page import Dashboard, chromium_context, find_chromium
from tests.e2e.dashboard_views import api_jobs, api_view, cycles, iso, page_view
from tests.e2e.helpers import REPO_ROOT, Api, make_host, poll

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
ARTIFACTS = REPO_ROOT / "test-artifacts"
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
CONFLICT_LOG = re.compile(r"Failed to load resource: .*status of 409")


@dataclass(frozen=True)
class Seeded:
    far: list[str]  # echo, due in 3 h: still scheduled
    hostile: str  # one of them, with markup in its payload
    done: list[str]  # echo, due now: succeeded
    retried: str  # fail_n_times: attempt 1 failed, attempt 2 succeeded
    failed: str  # fail_n_times: its only attempt failed


@pytest.fixture(scope="module")
def api(azurite: azurite_helpers.Azurite,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("e2e-dashboard")
    host = make_host(azurite, root,
                     JOBS_HANDLER_LIMITS='{"sleep": {"max_concurrency": 2, "max_per_second": 5}}')
    with host:
        client = Api(host)
        client.start()
        yield client
    print(host.logs()[-4000:])


@pytest.fixture(scope="module")
def seeded(api: Api) -> Seeded:
    due_far = iso(datetime.now(UTC) + timedelta(hours=3))
    far = [api.schedule(handler="echo", payload={"n": i}, due_at=due_far)["id"]
           for i in range(6)]
    hostile = api.schedule(handler="echo", payload={"note": HOSTILE}, due_at=due_far)["id"]
    done = [api.schedule(handler="echo", payload={"now": i})["id"] for i in range(3)]
    retried = api.schedule(handler="fail_n_times", payload={"n": 1, "key": "r"},
                           retry={"max_attempts": 2, "base_delay": 0.2, "max_delay": 0.5})["id"]
    failed = api.schedule(handler="fail_n_times", payload={"n": 5, "key": "f"},
                          retry={"max_attempts": 1})["id"]
    for job_id in done:
        assert api.wait_final(job_id)["status"] == "succeeded"
    assert api.wait_final(retried)["status"] == "succeeded"
    assert api.wait_final(failed)["status"] == "failed"
    return Seeded([*far, hostile], hostile, done, retried, failed)


@pytest.fixture(scope="module")
def dash(api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium not found: scripts/bootstrap.sh installs Debian's chromium package")
    with chromium_context(executable, tmp_path_factory.mktemp("chromium-profile")) as context:
        yield Dashboard.open(context, api.host.url(f"/api/dashboard?code={api.host.key}"))


@pytest.fixture
def page_log(dash: Dashboard) -> Iterator[Callable[..., None]]:
    """Each browser test ends with ``page_log(allowed)``: no console error (except the allowed
    ones), no CSP violation, no dialog other than the confirmations, and every request the page
    made went to the app with the key in the x-functions-key header, never in the URL."""
    dash.console_errors.clear()
    dash.dialogs.clear()
    dash.requests.clear()
    origin = dash.page.url.split("/api/")[0] + "/api/"

    def check(allowed: re.Pattern[str] | None = None) -> None:
        errors = [e for e in dash.console_errors if not (allowed and allowed.search(e))]
        assert errors == [], errors
        assert dash.csp_violations() == []
        assert all(d.startswith("confirm: ") for d in dash.dialogs), dash.dialogs
        assert dash.requests, "the page made no request"
        for request in dash.requests:
            assert request.url.startswith(origin) and "code=" not in request.url, request.url
            assert request.headers.get("x-functions-key"), request.url

    yield check


# ---- without a browser ---------------------------------------------------------------------
def test_the_page_needs_the_function_key(api: Api) -> None:
    assert api.request("GET", "/api/dashboard", key=False).status_code == 401
    assert api.request("GET", "/api/dashboard", key=False,
                       params={"code": "wrong"}).status_code == 401


def test_the_page_is_self_contained_and_keeps_the_key_private(api: Api) -> None:
    r = api.request("GET", "/api/dashboard", key=False, params={"code": api.host.key})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert not re.search(r"https?://", r.text, re.IGNORECASE), "the page references a host"
    assert api.host.key not in r.text


# ---- in the browser ------------------------------------------------------------------------
@pytest.mark.browser
def test_numbers_shown_match_the_api(api: Api, seeded: Seeded, dash: Dashboard,
                                     page_log: Callable[..., None]) -> None:
    dash.wait_refreshed(dash.refreshes())  # auto-refresh runs on its own
    dash.pause()
    dash.filter_jobs()
    slots = sorted(cycles(api))
    assert slots == [0, 1]
    for _ in range(10):
        before, cycles_before = api_view(api), cycles(api)
        dash.refresh()
        after, cycles_after = api_view(api), cycles(api)
        if before != after:
            continue  # something changed meanwhile: compare again
        view, shown_cycles = page_view(dash, slots)
        assert view == before
        for k in slots:
            assert cycles_before[k] <= shown_cycles[k] <= cycles_after[k]
        break
    else:
        pytest.fail("the API view never held still across a page refresh")
    # the seeded jobs are all there, the shards count them, the slots ran them
    listed = {row["id"]: row["status"] for row in view["jobs"]}
    assert set(seeded.far) <= set(listed)
    assert {listed[j] for j in seeded.done} == {"succeeded"}
    assert (listed[seeded.retried], listed[seeded.failed]) == ("succeeded", "failed")
    assert sum(int(row["scheduled"]) for row in view["shards"].values()) >= len(seeded.far)
    # (the shards' counts come from the logs; a slot's totals add up what its activities
    # reported to their cycles, which can miss one: README, Metrics for operators)
    assert sum(int(row["failed"].replace(",", "")) for row in view["shards"].values()) >= 1
    assert int(view["chart"]["finished-total"] or 0) >= len(seeded.done) + 2
    page_log()


@pytest.mark.browser
def test_filters_and_paging(api: Api, seeded: Seeded, dash: Dashboard,
                            page_log: Callable[..., None]) -> None:
    dash.pause()
    page = dash.page
    dash.filter_jobs(status="scheduled", per_page="5")
    first, cursor = api_jobs(api, status="scheduled", limit=5)
    assert len(first) == 5 and cursor, "the seed has more than 5 scheduled jobs"
    assert dash.job_rows() == first
    expect(page.get_by_test_id("jobs-prev")).to_be_disabled()
    dash.then_refreshed(page.get_by_test_id("jobs-next").click)
    second, after_second = api_jobs(api, status="scheduled", limit=5, cursor=cursor)
    assert dash.job_rows() == second
    assert not set(r["id"] for r in first) & set(r["id"] for r in second)
    expect(page.get_by_test_id("jobs-page")).to_have_text("page 2")
    if after_second is None:
        expect(page.get_by_test_id("jobs-next")).to_be_disabled()
    dash.then_refreshed(page.get_by_test_id("jobs-prev").click)
    assert dash.job_rows() == first

    dash.filter_jobs(handler="fail_n_times")
    rows, _ = api_jobs(api, handler="fail_n_times", limit=25)
    assert dash.job_rows() == rows
    assert {r["id"] for r in rows} == {seeded.retried, seeded.failed}

    now = datetime.now(UTC)
    start, end = now + timedelta(hours=2), now + timedelta(hours=4)
    dash.filter_jobs(due_from=start.strftime("%Y-%m-%dT%H:%M:%S"),
                     due_to=end.strftime("%Y-%m-%dT%H:%M:%S"))
    rows, _ = api_jobs(api, due_from=iso(start.replace(microsecond=0)),
                       due_to=iso(end.replace(microsecond=0)), limit=25)
    assert dash.job_rows() == rows
    assert {r["id"] for r in rows} == set(seeded.far)
    page_log()


@pytest.mark.browser
def test_job_detail_shows_payload_attempts_and_result_as_text(
        seeded: Seeded, dash: Dashboard, page_log: Callable[..., None]) -> None:
    dash.pause()
    page = dash.page
    dash.filter_jobs()
    dash.open_job(seeded.retried)
    expect(page.get_by_test_id("detail-status")).to_have_text("succeeded")
    expect(page.get_by_test_id("detail-history")).to_contain_text(
        "attempt 1 of 'r' fails on purpose")
    assert page.get_by_test_id("detail-record").count() >= 4  # add, start, fail, start, ok
    assert '"attempt": 2' in page.get_by_test_id("detail-result").inner_text()

    dash.open_job(seeded.hostile)
    payload = page.get_by_test_id("detail-payload")
    expect(payload).to_contain_text(HOSTILE)  # shown as text ...
    assert page.locator("#detail img, #detail script, #job-table img").count() == 0  # ... only
    page_log()


@pytest.mark.browser
def test_cancel_and_run_now_from_the_page(api: Api, seeded: Seeded, dash: Dashboard,
                                          page_log: Callable[..., None]) -> None:
    dash.pause()
    page = dash.page
    result = page.get_by_test_id("action-result")
    cancelled, run, raced = seeded.far[0], seeded.far[1], seeded.far[2]
    dash.filter_jobs(status="scheduled", per_page="100")

    # cancel from the detail panel (the confirm dialog is accepted)
    dash.open_job(cancelled)
    expect(page.get_by_test_id("detail-status")).to_have_text("scheduled")
    dash.then_refreshed(page.get_by_test_id("detail-cancel").click)
    expect(result).to_have_text(f"Cancel: job {cancelled} is now cancelled")
    expect(page.get_by_test_id("detail-status")).to_have_text("cancelled")
    expect(page.get_by_test_id("detail-cancel")).to_be_disabled()
    assert api.get(cancelled)["status"] == "cancelled"
    assert cancelled not in [r["id"] for r in dash.job_rows()]  # the list follows the filter

    # run now from the job's row: it runs at once and succeeds
    row = page.locator(f"[data-testid=job-row][data-job-id='{run}']")
    dash.then_refreshed(row.get_by_test_id("job-run").click)
    expect(result).to_contain_text(f"Run now: job {run} is now ")
    assert api.wait_final(run)["status"] == "succeeded"
    dash.filter_jobs()
    expect(page.locator(f"[data-testid=job-row][data-job-id='{run}'] [data-col=status]")
           ).to_have_text("succeeded")
    dash.open_job(run)
    expect(page.get_by_test_id("detail-result")).to_contain_text('"n": 1')

    # the page still shows a job as scheduled that was cancelled behind its back: the answer
    # (409 problem+json) is shown as "title: detail"
    dash.filter_jobs(status="scheduled", per_page="100")
    assert api.request("DELETE", f"/api/jobs/{raced}").status_code == 200
    again = api.request("DELETE", f"/api/jobs/{raced}")
    assert again.status_code == 409
    problem = again.json()
    row = page.locator(f"[data-testid=job-row][data-job-id='{raced}']")
    dash.then_refreshed(row.get_by_test_id("job-cancel").click)
    expect(result).to_have_attribute("data-outcome", "error")
    expect(result).to_have_text(f"Cancel failed: {problem['title']}: {problem['detail']}")
    assert len(dash.dialogs) == 3

    # the picture: every job, the retried one opened
    dash.filter_jobs()
    dash.open_job(seeded.retried)
    expect(page.get_by_test_id("detail-history")).to_contain_text("fails on purpose")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {Path(shot).relative_to(REPO_ROOT)}")
    page_log(CONFLICT_LOG)


@pytest.mark.browser
def test_pause_and_resume_from_the_page(api: Api, seeded: Seeded, dash: Dashboard,
                                        page_log: Callable[..., None]) -> None:
    dash.pause()
    page = dash.page
    result = page.get_by_test_id("action-result")
    button = page.get_by_test_id("detail-pause")
    job = seeded.far[4]
    dash.open_job(job)
    expect(button).to_have_text("Pause")
    dash.then_refreshed(button.click)
    expect(result).to_have_text(f"Pause: job {job} is now paused")
    expect(page.get_by_test_id("detail-status")).to_have_text("paused")
    expect(page.get_by_test_id("detail-run")).to_be_disabled()
    expect(page.get_by_test_id("detail-cancel")).to_be_enabled()  # a paused job can be cancelled
    assert api.get(job)["status"] == "paused"
    dash.filter_jobs(status="paused", per_page="100")
    assert job in [r["id"] for r in dash.job_rows()]
    expect(button).to_have_text("Resume")
    dash.then_refreshed(button.click)
    expect(result).to_have_text(f"Resume: job {job} is now scheduled")
    assert api.get(job)["status"] == "scheduled"
    page_log()


@pytest.mark.browser
def test_retry_a_failed_job_from_the_failed_view(api: Api, seeded: Seeded, dash: Dashboard,
                                                 page_log: Callable[..., None]) -> None:
    dash.pause()
    page = dash.page
    result = page.get_by_test_id("action-result")
    job = seeded.failed
    assert api.wait_final(job)["status"] == "failed"
    dash.filter_jobs(status="failed", per_page="100")
    row = page.locator(f"[data-testid=job-row][data-job-id='{job}']")
    expect(row.get_by_test_id("job-run")).to_be_disabled()
    dash.then_refreshed(row.get_by_test_id("job-retry").click)
    expect(result).to_have_text(f"Retry: job {job} is now scheduled")
    # fail_n_times fails attempt 1 again: the new run fails too, and the history holds both
    again = api.wait_final(job)
    assert (again["status"], again["runs"]) == ("failed", 1)
    kinds = [r["type"] for r in api.request("GET", f"/api/jobs/{job}/history").json()["records"]]
    assert kinds.count("start") == 2 and "retry" in kinds, kinds
    dash.filter_jobs(status="failed", per_page="100")  # listed again: it failed again
    dash.open_job(job)
    expect(page.get_by_test_id("detail-run-again")).to_be_enabled()
    expect(page.get_by_test_id("detail-run")).to_be_disabled()
    page_log()


@pytest.mark.browser
def test_filter_by_label_and_see_a_jobs_labels(api: Api, dash: Dashboard,
                                              page_log: Callable[..., None]) -> None:
    dash.pause()
    page = dash.page
    due = iso(datetime.now(UTC) + timedelta(hours=3))
    mine = [api.schedule(handler="echo", due_at=due, labels={"team": "dash", "n": str(i)})["id"]
            for i in range(2)]
    api.schedule(handler="echo", due_at=due, labels={"team": "other"})
    dash.filter_jobs(label="team:dash", per_page="100")
    assert sorted(r["id"] for r in dash.job_rows()) == sorted(mine)
    dash.filter_jobs(label="team:dash,n:1", per_page="100")
    assert [r["id"] for r in dash.job_rows()] == [mine[1]]
    dash.open_job(mine[1])
    expect(page.get_by_test_id("detail-labels")).to_have_text("team:dash, n:1")
    page_log()


@pytest.mark.browser
def test_the_limited_handlers_are_shown(dash: Dashboard) -> None:
    expect(dash.page.get_by_test_id("handler-limits")).to_have_text(
        "Handler limits (throttled jobs stay scheduled): sleep: 0 of 2 running, at most 5/s")


@pytest.mark.browser
def test_a_due_job_waiting_for_a_permit_shows_as_throttled(api: Api, dash: Dashboard,
                                                           page_log: Callable[..., None]) -> None:
    # this host limits sleep to 2 at once: of three 8-second sleeps due now, one waits
    dash.pause()
    ids = [api.schedule(handler="sleep", payload={"seconds": 8})["id"] for _ in range(3)]
    poll(lambda: [api.get(i)["status"] for i in ids],
         lambda ss: ss.count("running") == 2 and ss.count("scheduled") == 1, timeout=30)
    waiting = next(i for i in ids if api.get(i)["status"] == "scheduled")
    dash.filter_jobs(handler="sleep", per_page="100")
    row = dash.page.locator(f"[data-testid=job-row][data-job-id='{waiting}']")
    expect(row.get_by_test_id("job-throttled")).to_have_text(" throttled")
    for i in ids:
        api.wait_final(i)
    page_log()
