"""Golden protocol fixtures: recorded context JSON fed to the real SDK orchestrator callable.

If a Durable SDK upgrade changes the replay protocol (action shapes, schema version, how
history is consumed), these fail instead of devhost silently misbehaving.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.orchestration_runner import check_determinism, interpret
from tests.devhost.golden_cases import CASES, GOLDEN_DIR, run_case

GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.json"))


def test_every_case_has_a_golden_file() -> None:
    assert sorted(p.stem for p in GOLDEN_FILES) == sorted(CASES)


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_sdk_output_matches_recording(path: Path) -> None:
    doc = json.loads(path.read_text())
    state = run_case(doc["orchestrator"], json.dumps(doc["context"]))
    assert state == doc["state"]


def _state(name: str) -> dict:
    return json.loads((GOLDEN_DIR / f"{name}.json").read_text())["state"]


def test_recorded_states_mean_what_devhost_assumes() -> None:
    first = interpret(_state("fan_out_first_episode"))
    assert not first.is_done
    assert [(p.kind, p.name, p.input) for p in first.planned] == [
        ("activity", "double", "0"), ("activity", "double", "1"), ("activity", "double", "2")]
    assert _state("fan_out_first_episode")["schemaVersion"] == 2

    done = interpret(_state("fan_out_completed"))
    assert (done.is_done, done.output) == (True, 6)

    can = interpret(_state("waiter_event_then_continue_as_new"))
    assert can.is_done and can.continue_as_new
    assert json.loads(can.continue_as_new_input) == {"gen": 5, "got": '{"n": 1}'}
    assert can.custom_status == {"gen": 4}
    assert can.waits_for == ["ping"]

    retry = interpret(_state("retry_failed_then_timer_then_success"))
    assert (retry.is_done, retry.output) == (True, "ok")
    assert retry.planned[0].retry == {"firstRetryIntervalInMilliseconds": 1000,
                                      "maxNumberOfAttempts": 2}

    err = _state("orchestrator_error")
    assert err["error"] == "kaboom"
    assert err["isDone"] is False


def test_determinism_check_names_sequence_id() -> None:
    recorded = [{"seq": 0, "kind": "activity", "name": "double", "input": "0", "fire_at": None},
                {"seq": 1, "kind": "timer", "name": None, "input": None, "fire_at": "x"}]
    planned = interpret(_state("fan_out_first_episode")).planned
    message = check_determinism(recorded, planned, strict=False)
    assert message is not None
    assert "sequence id 1" in message
    assert "expected CreateTimer(fireAt=x)" in message
    assert "produced CallActivity('double')" in message
    assert check_determinism(recorded[:1], planned, strict=False) is None
    assert "sequence id 0" in (check_determinism(
        [{**recorded[0], "input": "9"}], planned, strict=True) or "")
