"""Labels: their limits, their filters, and the OpenAPI pattern that documents the filter."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from jobs_core import JobStatus, records
from jobs_core.labels import (
    LABEL_FILTER_PATTERN,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    InvalidLabelsError,
    matches,
    parse_label_filter,
    parse_labels,
)
from jobs_core.shard_state import ShardState
from tests.jobs_helpers import T0


def test_labels_within_the_limits_are_kept_and_empty_means_none() -> None:
    labels = {f"k{i}": "v" * MAX_LABEL_VALUE_CHARS for i in range(MAX_LABELS)}
    assert parse_labels(labels) == labels
    assert parse_labels({"a.b_c-1": ""}) == {"a.b_c-1": ""}
    assert parse_labels({}) is None and parse_labels(None) is None


@pytest.mark.parametrize("bad", [
    ["team"], "team=billing", {f"k{i}": "v" for i in range(MAX_LABELS + 1)},
    {"": "x"}, {"-lead": "x"}, {"has space": "x"}, {"k" * 64: "x"}, {"ok": 1},
    {"ok": None}, {"ok": "x" * (MAX_LABEL_VALUE_CHARS + 1)}, {"ok": "line\nbreak"},
    # C1 controls and the Unicode line ends: a line end to str.splitlines, log readers and
    # older JavaScript (they passed: only C0 and DEL were refused)
    {"ok": "next\x85line"}, {"ok": "line\u2028sep"}, {"ok": "para\u2029sep"}, {"ok": "\x9b2J"},
])
def test_labels_beyond_the_limits_are_a_400_naming_labels(bad: object) -> None:
    with pytest.raises(InvalidLabelsError) as caught:
        parse_labels(bad)
    assert caught.value.field == "labels"


def test_a_filter_matches_a_key_with_a_value_or_any_value() -> None:
    wanted = parse_label_filter(["team:billing", "urgent"])
    assert wanted == {"team": "billing", "urgent": None}
    assert matches({"team": "billing", "urgent": "", "x": "y"}, wanted)
    assert not matches({"team": "billing"}, wanted)
    assert not matches({"team": "ops", "urgent": "yes"}, wanted)
    assert not matches(None, wanted) and matches(None, {})
    assert parse_label_filter(["note:a:b"]) == {"note": "a:b"}  # the first colon splits


@pytest.mark.parametrize("text", [
    "team:billing", "a", "a:b,c", "a:,b:x y", "k:" + "v" * 128, ",".join(f"k{i}" for i in range(8)),
    "bad key", "a:b,", ",a", "k:" + "v" * 129, ",".join(f"k{i}" for i in range(9)), ":v", "a:\x01",
    "a:\x85", "a:\u2028", "a:\u2029", "a:\x9f", "a:\xa0", "a:caf\xe9", "a:\u2027",
])
def test_the_documented_filter_pattern_accepts_exactly_what_the_api_does(text: str) -> None:
    documented = re.fullmatch(LABEL_FILTER_PATTERN, text) is not None
    try:
        parse_label_filter(text.split(","))
        accepted = True
    except InvalidLabelsError:
        accepted = False
    assert documented == accepted, text


def test_labels_are_version_4_records_and_replay_through_add_and_update() -> None:
    from tests.unit.test_log_format import a_job
    job = a_job(labels={"team": "billing"})
    wire = records.add(job).encode()
    assert (wire["v"], wire["lb"]) == (4, {"team": "billing"})
    assert records.add(a_job()).encode()["v"] == 2  # no labels: readable as before
    state = ShardState("shards/s000/20261122T1400-0000.jsonl")
    state.apply(wire)
    changed = records.update(job.id, {"labels": {"team": "ops"}}, job.due_at, T0, rid="r")
    assert changed.encode()["v"] == 4
    state.apply(changed.encode())
    assert state.jobs[job.id].labels == {"team": "ops"}
    state.apply(records.update(job.id, {"labels": None}, job.due_at, T0, rid="r2").encode())
    assert state.jobs[job.id].labels is None and state.jobs[job.id].status is JobStatus.SCHEDULED
    moved = records.carry(replace(state.jobs[job.id], labels={"x": "1"}), "from", T0).encode()
    assert records.decode(moved).job.labels == {"x": "1"}  # type: ignore[union-attr]


def test_a_filter_key_given_twice_is_refused() -> None:
    """``team:a,team:b`` kept the last one, so a job labelled ``team=b`` matched it and not
    ``team:b,team:a`` (hunt of stop 28); every filter must match, and a job has one value."""
    with pytest.raises(InvalidLabelsError, match="given twice"):
        parse_label_filter(["team:a", "team:b"])
    with pytest.raises(InvalidLabelsError, match="given twice"):
        parse_label_filter(["team", "team:b"])
