"""The simulation as a test: a fixed range of seeds (every seed that ever found a bug is in it,
or in REGRESSION_SEEDS), checked against the invariants I1-I13 (tests/sim/oracle.py; I13, that
every world ends, in runner.py).

Replay one: ``python -m tests.sim --seeds 1 --start SEED -v``. Soak: ``python -m tests.sim
--seeds 20000 --start 1000 --workers 2``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .runner import run_many, run_seed
from .world import LATEST_WORKLOAD, SimConfig

# every seed of 0-499 that the closing notes name as having found a defect in the core is below
# 300 (the highest: 262); 300 seeds keep CI under its 30 minutes on 2 cores beside the suite
CI_SEEDS = range(0, 300)
# seeds that found a defect outside CI_SEEDS, with their workload size (None: the default) and
# the version of the workload they were found with (world.WORKLOADS). The closing notes of the
# simulation, core and events issues name the defect each one found.
REGRESSION_SEEDS: tuple[tuple[int, int | None, int], ...] = (
    # outcomes of jobs started just below JOBS_EVACUATE_BLOCKS overran the blob's headroom
    # (running jobs now reserve their outcome block)
    (864, None, 2),
    # retention purged a blob on the path of a recurring job whose home was too full for a
    # pointer: GET answered 404 (retention now keeps blobs the home's pointer does not bypass)
    (84, 400, 2),
    # a start planned before a reschedule that was committed first ran the job 83 min early
    # (a start is now valid only when its occurrence is due at the start's time)
    (2616, None, 2),
    # a keyed POST read its job back after it had started and announced it as scheduled with
    # attempt 1, an event the log never holds (I10); the event now comes from our own add
    (3112, None, 2),
    # a reschedule earlier committed, its touch hint (a second append) failed: the planner
    # skipped the job's future blob and it ran 690 s late (I11); the hint is now written first
    (4870, None, 2),
    # the oracle, not the core: two concurrent updates both answered 200, and the one answered
    # later applied last; I6 expected the earlier one's payload (concurrent controls now may
    # apply in either order)
    (30491, None, 3),
    # every cold process began at blob index 0 and added to the sealed blob; those adds and the
    # moves out of it used up its headroom, and two jobs at its last blocks never ran (I1).
    # A process now lists a shard before its first add and starts at the newest blob
    (27819, None, 3),
    # the oracle, not the core: a resume asked 16 ms before a cancel applied first, and was
    # answered `scheduled` after the cancel's `cancelled`; I4 took that for a read going back
    # (answers to concurrent requests may now come in either order; tests/sim/test_oracle.py)
    (27982, None, 3),
    # a control whose read-back also held the start committed just after it announced that
    # state: an event the log does not hold (I10). Controls now answer and announce the state
    # their own record made. (Its world changed with the rollover fix above, which hid it:
    # test_a_control_answers_and_announces_the_state_its_own_change_made fails without this)
    (31191, None, 3),
    # a keyed job's lost add, completed 80 minutes after its claim into the claim's blob (a past
    # bucket of a past day, done) left the planners no hint: it ran 540 s late (I11). Found on
    # 2e1df79, whose rule completed such adds that late; the add now writes the hint
    # (test_a_lost_add_completed_in_a_later_bucket_leaves_the_planners_a_hint)
    (33162, None, 4),
    # not the core: the slot orchestrators re-planned at once after every overdue cycle. With
    # one process dying often (p_crash) and a 0.5 s deadline, each deadline queued one more
    # plan behind the dead process, and the world never ended (I13: thousands of activities
    # out). After plans that missed the deadline a cycle now waits longer for its own plan,
    # in the orchestrator too
    # (test_after_plans_that_missed_the_deadline_a_cycle_waits_longer_for_its_own)
    (34542, None, 5),
    # a fixed_rate job with catch_up_max ran its 22:13:00 occurrence, was rescheduled 30 s into
    # the past, ran that, and then caught up 22:13:00 again: catch-up counted missed occurrences
    # from the rescheduled due time (I7, "an occurrence it had passed ran again": the check was
    # added when a review found the defect through the API; the soak's frozen core fails it).
    # Job.due_set_at: catch-up counts from when a control set the due time
    # (test_rescheduling_a_catch_up_job_into_the_past_reruns_no_occurrence_it_ran)
    (70017, None, 5),
    # a cron job with a misfire grace of 120 s was rescheduled 600 s into the past, and the
    # executor skipped that occurrence as a misfire at once: lateness counted from the due time,
    # not from the request the caller was answered 200 for (I6, checked from the log since
    # workload 6, which also aims half the reschedules at recurring jobs; 3 of 20 seeds fail on
    # the soak's frozen core). Job.due_set_at and the misfire record's fence
    # (test_rescheduling_into_the_recent_past_runs_despite_misfire_grace)
    (80008, None, 6),
)
WORKERS = min(2, os.cpu_count() or 1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~10 min alone on 2 cores; scripts/test.sh runs it beside the rest
def test_every_invariant_holds_on_the_ci_seeds() -> None:
    totals, failed = run_many(list(CI_SEEDS), WORKERS)
    print(totals.summary())
    assert not failed, "\n\n".join(r.describe(12) for r in sorted(failed, key=lambda r: r.seed))
    assert totals.seeds >= len(CI_SEEDS) and totals.operations >= 200_000, totals.summary()
    assert sum(totals.faults.values()) > 0 and totals.faults["crash"] > 0


@pytest.mark.parametrize(("seed", "ops", "workload"), [
    pytest.param(seed, ops, workload, id=f"{seed}-workload-{workload}")
    for seed, ops, found in REGRESSION_SEEDS for workload in range(found, LATEST_WORKLOAD + 1)])
def test_the_regression_seeds_hold(seed: int, ops: int | None, workload: int) -> None:
    """Each seed replays the workload it was found with, and runs with each later version."""
    result = run_seed(seed, ops, workload=workload)
    assert result.ok, result.describe(20)


def test_a_world_that_does_not_end_in_its_real_time_fails_i13() -> None:
    """A world whose work piles up would run for hours (seed 34542 did): past its real time
    it stops, and the seed fails with what it had reached, instead of holding a soak."""
    result = run_seed(5, ops=20, real_seconds=0.0)
    assert not result.ok and [v.invariant for v in result.violations] == ["I13"]
    assert "did not end in 0 s of real time: still running at simulated 0 s" in \
        result.describe()


def test_a_seed_replays_exactly() -> None:
    """Everything random comes from the seed. Seed 2 has a recurring job with jitter (the third
    of its three): its first occurrence's spread once came from an unseeded generator, so two
    runs of the seed differed and a failing seed of a soak could not be replayed. The second
    run is another interpreter with another string-hash seed (set orders differ there)."""
    assert SimConfig.draw(2).recurring >= 3  # (recurring job 2: fixed_rate with jitter_seconds)
    here = run_seed(2)
    hash_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    elsewhere = subprocess.run(
        [sys.executable, "-c", "from tests.sim.runner import run_seed; "
                               "print(run_seed(2).digest())"],
        env={**os.environ, "PYTHONHASHSEED": hash_seed}, cwd=ROOT, capture_output=True,
        text=True, check=True, timeout=300).stdout.strip()
    assert here.ok and here.operations > 0
    assert here.digest() == elsewhere


AZURITE_SEEDS = (3, 7)  # two of the CI seeds, with few operations (about a minute)


@pytest.mark.azurite
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", AZURITE_SEEDS)
def test_seeds_hold_against_azurite(seed: int, azurite: object) -> None:
    """The same worlds on the real blob adapter: virtual time stands still while a request is
    with Azurite, so the fault model (errors, ambiguous writes, crashes) wraps real requests."""
    from jobs_core.blob_store import AzureBlobStore
    from tests import azurite as azurite_helpers

    async def store() -> AzureBlobStore:
        return await AzureBlobStore.open(azurite_helpers.settings(
            azurite, azurite_helpers.unique_container("sim")))  # type: ignore[arg-type]

    result = run_seed(seed, ops=40, store=store)
    print(f"seed {seed} on Azurite: {result.operations} operations, faults "
          f"{dict(result.faults)}, {result.seconds:.1f} s")
    assert result.ok, result.describe(20)
    assert result.operations >= 40


@pytest.mark.slow
async def test_a_recurring_job_moves_on_and_its_blobs_stay_small() -> None:
    """Defect 4 (a recurring job exhausts its blob): three days every 5 minutes. The job
    leaves each blob about a day after its bucket ended, so no blob grows with its lifetime,
    and a GET is two reads (home blob, then where the job lives). ``python -m
    tests.sim.long_recurrence --days 3650 --every 60`` runs the same for ten years."""
    from .long_recurrence import run

    summary = await run(days=3, every=300)
    assert summary.status == "scheduled" and summary.runs >= 3 * 288 - 1
    assert summary.max_blocks_any_blob < 1000  # pinned to one blob it would be ~1,730
    assert summary.get_reads_at_end <= 2
