"""The oracle's checks at the end of a run: the invariants of ``oracle.py``'s docstring, over
what the oracle recorded and what the storage log holds. ``FinalChecks`` is the part of
``Oracle`` that does this."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jobs_core.errors import JobNotFoundError, JobsError
from jobs_core.event_log import events_of
from jobs_core.events import route
from jobs_core.model import Job, JobStatus
from jobs_core.shard_state import ShardState

from .facts import (
    EPOCH,
    HEALTHY_AFTER_S,
    LIMITED,
    PUBLISH_SETTLE_S,
    Accepted,
    Invocation,
    world_time,
)
from .fired_jobs import check_fired, log_blobs
from .queues import QUEUES

if TYPE_CHECKING:
    from .world import Process, SimConfig, World


class FinalChecks:
    """Mixed into ``Oracle``: what the checks read of it is declared here."""

    config: SimConfig
    jobs: dict[str, Accepted]
    order: list[str]
    invocations: list[Invocation]
    by_job: dict[str, list[Invocation]]
    taints: dict[str, list[tuple[float, str]]]
    purges: list[tuple[float, datetime, int]]
    compensations: list[tuple[str, int, float]]
    compensating: list[Invocation]
    ops: Counter[str]
    duplicates: Counter[str]
    faults_end: float

    def violate(self, invariant: str, detail: str) -> None:
        raise NotImplementedError

    async def check_final(self, final: Process, world: World) -> None:
        finals: dict[str, Job] = {}
        for job_id in self.order:
            try:
                finals[job_id] = await final.scheduler.get(job_id)
            except JobNotFoundError:
                if not self._purged_ok(job_id):
                    self.violate("I1" if not self.purges else "I8",
                                 f"accepted job {job_id} is gone at the end")
            except JobsError as exc:
                self.violate("I1", f"accepted job {job_id} unreadable at the end: {exc}")
        end = world.now()
        blobs = await log_blobs(final, world)  # the whole log, read once
        for schedule, runs in (await check_fired(final, world, blobs, finals,
                                                 self.violate)).items():
            self.by_job[schedule].extend(runs)  # (its I6 and I7 checks see them)
            self.ops["occurrence jobs"] += len(runs)
        for job_id, job in finals.items():
            info = self.jobs[job_id]
            if info.recurring:
                self._check_recurring(job_id, job, info, end)
            elif not job.status.is_final and not self._left_paused(job, info):
                self.violate("I1", f"{job_id} is {job.status.value} at the end "
                                   f"(due {job.due_at:%d %H:%M:%S}, attempts {job.attempts})")
            self._check_controls(job_id, job, info)
        self._check_invocations()
        self._check_timely(finals)
        self._check_compensations(finals)
        self._check_limits()
        await self._check_fencing(final)
        self._check_events(blobs, world)

    def _check_events(self, blobs: list[tuple[str, bytes, bool]], world: World) -> None:
        """I10 (see the module doc)."""
        expected: dict[str, set[str]] = defaultdict(set)
        # a change recorded just before the world stops may still be waiting for the log
        # publisher's next pass, which never comes here: it is owed, but not checked
        owed_from = world_time(world.now() - PUBLISH_SETTLE_S)
        late: set[str] = set()
        for name, data, _ in blobs:
            state = ShardState(name, keep_finished=False)
            state.observer = lambda r, before, after: [
                (expected[q] if r.at <= owed_from else late).update(e.id for e in evs)
                for q, evs in route(events_of(r, before, after), QUEUES[0]).items()]
            end = data.rfind(b"\n") + 1
            state.feed_lines(data[:end].split(b"\n"))
        delivered = world.queues.delivered
        for queue in sorted(set(expected) | set(delivered)):
            missing = expected[queue] - set(delivered[queue])
            if missing:
                self.violate("I10", f"{len(missing)} of {len(expected[queue])} events never "
                                    f"reached queue {queue}, e.g. {sorted(missing)[:2]}")
            phantom = set(delivered[queue]) - expected[queue] - late
            if phantom:
                self.violate("I10", f"{len(phantom)} events on queue {queue} for changes the "
                                    f"log does not hold, e.g. {sorted(phantom)[:2]}")
            again = sum(n - 1 for n in delivered[queue].values() if n > 1)
            self.duplicates["event delivered again"] += again
            self.ops["events delivered"] += len(delivered[queue])

    async def _check_fencing(self, final: Process) -> None:
        """I9: an outcome applied in the log belongs to an execution that no newer execution
        of the same job had superseded when the outcome was recorded."""
        by_token = {i.token: i for i in self.invocations if i.token}
        for info in await final.store.list("shards/"):
            try:
                data = (await final.store.read(info.name)).data
            except JobsError:
                continue
            state = ShardState(info.name)
            set_at: dict[str, datetime] = {}  # job -> when an applied control set its due time
            for line in data.split(b"\n"):
                try:
                    record = json.loads(line) if line.strip() else None
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                before = state.jobs.get(str(record.get("id")))
                state.apply(record)
                after = state.jobs.get(str(record.get("id")))
                token = record.get("x")
                applied = after is not None and (before is None or after.version != before.version)
                if applied and before is not None:
                    self._check_misfire_after_control(record, before, set_at)
                if record.get("op") not in ("ok", "fail") or not token or not applied:
                    continue
                mine = by_token.get(token)
                if mine is None:
                    continue  # an abandoned execution's recorded loss (it may never have run)
                at = datetime.fromisoformat(record["at"])
                newer = [i for i in self.by_job.get(mine.job_id, [])
                         if i.start > mine.start and world_time(i.start) < at]
                if newer:
                    self.violate("I9", f"{mine.job_id}: the outcome of execution {token} "
                                       f"(started {mine.start:.3f}) was recorded at {at:%H:%M:%S} "
                                       f"after a newer execution started at {newer[0].start:.3f}")

    def _check_misfire_after_control(self, record: dict[str, Any], before: Job,
                                     set_at: dict[str, datetime]) -> None:
        """I6 (from the log): a due time a reschedule or run-now set is the caller's, and its
        lateness counts from the request: a ``misfire`` that applied within the misfire grace
        of that request skipped the occurrence the control was answered 200 for. ``set_at``
        follows the applied controls of this blob's jobs (a move loses it: no check then)."""
        op, at = record.get("op"), datetime.fromisoformat(str(record["at"]))
        if op in ("reschedule", "run_now"):
            set_at[before.id] = at
        elif op == "misfire" and before.id in set_at:
            grace = before.recurrence.misfire_grace_seconds if before.recurrence else None
            since = max(before.due_at, set_at[before.id])
            if grace is not None and (at - since).total_seconds() <= max(grace, 1.0):
                self.violate("I6", f"{before.id}: its occurrence due {before.due_at:%H:%M:%S}, "
                                   f"set by a control at {set_at[before.id]:%H:%M:%S}, was "
                                   f"skipped as a misfire at {at:%H:%M:%S} (grace {grace:g} s)")
        if op in ("ok", "fail", "misfire", "retry"):
            set_at.pop(before.id, None)

    @staticmethod
    def _left_paused(job: Job, info: Accepted) -> bool:
        """A job may end paused if a pause of it took effect (answered 200, or an error that
        may have committed) and no resume is known to have followed."""
        if job.status is not JobStatus.PAUSED:
            return False
        return any(c[0] == "pause" and c[1] in ("200", "error") for c in info.controls)

    def _check_recurring(self, job_id: str, job: Job, info: Accepted, end: float) -> None:
        """I7: a recurring job keeps running (with overlap ``allow``: keeps creating a job per
        occurrence, see ``fired_jobs.py``), and a daily cron runs once a local day."""
        if job.status is JobStatus.CANCELLED:
            return
        if self._left_paused(job, info):
            return  # held by its user: it is not expected to run
        if job.status is JobStatus.PAUSED:
            self.violate("I1", f"recurring {job_id} is paused at the end, never paused by "
                               "a request")
            return
        runs = sorted({(i.run, i.due_at) for i in self.by_job.get(job_id, []) if i.attempt == 1})
        resumed = [world_time(c[3]) for c in info.controls
                   if c[0] == "resume" and c[1] in ("200", "error")]
        last_due = max([d for _, d in runs] + resumed, default=info.due_at)
        allowed = max(timedelta(hours=2), 3 * _period(info.request.recurrence))
        if EPOCH + timedelta(seconds=end) - last_due > allowed:
            self.violate("I7", f"recurring {job_id} stopped: last run due {last_due:%d %H:%M}, "
                               f"status {job.status.value}, runs {job.runs}")
        self._check_passed_occurrences(job_id, info)
        rec = info.request.recurrence
        moved_by_user = any(c[0] in ("run_now", "reschedule", "resume", "retry")
                            and c[1] in ("200", "error") for c in info.controls)
        if isinstance(rec, dict) and rec.get("cron", "").count("*") == 3 and not moved_by_user:
            zone = ZoneInfo(rec["timezone"])
            days = Counter(d.astimezone(zone).date() for _, d in runs)
            twice = [str(day) for day, n in days.items() if n > 1]
            if twice:
                self.violate("I7", f"daily {rec['cron']} {rec['timezone']} {job_id} ran twice on "
                                   f"{twice}")

    def _check_passed_occurrences(self, job_id: str, info: Accepted) -> None:
        """I7: an occurrence once passed does not run again: each run whose due time no
        control set (a run-now, reschedule, resume or retry that may have taken effect between
        the previous run's start and its own) is due after every earlier such run. (A
        reschedule into the past of a catch-up job ran the occurrences it had already run
        again.) A run a control moved does not count: an overdue catch-up occurrence moved
        later still leaves the ones missed after its own due time to run after it."""
        rec = info.request.recurrence
        if isinstance(rec, dict) and rec.get("overlap") == "allow":
            return  # (its occurrences are jobs of their own: fired_jobs.py)
        starts: dict[tuple[int, datetime], float] = {}
        for inv in self.by_job.get(job_id, []):
            if inv.attempt == 1:
                key = (inv.run, inv.due_at)
                starts[key] = min(inv.start, starts.get(key, inv.start))
        moves = [(c[2], c[3]) for c in info.controls
                 if c[0] in ("run_now", "reschedule", "resume", "retry")
                 and c[1] in ("200", "error")]
        latest: datetime | None = None
        previous = float("-inf")
        for (run, due), start in sorted(starts.items(), key=lambda item: (item[0][0], item[1])):
            moved = any(began < start and answered > previous for began, answered in moves)
            if latest is not None and due <= latest and not moved:
                self.violate("I7", f"recurring {job_id} run {run} was due {due:%d %H:%M:%S}, "
                                   f"not after an earlier run due {latest:%d %H:%M:%S}: an "
                                   "occurrence it had passed ran again")
                return
            if not moved:
                latest = due if latest is None else max(latest, due)
            previous = start

    def _check_controls(self, job_id: str, job: Job, info: Accepted) -> None:
        cancels = [c for c in info.controls if c[0] == "cancel"]
        answered = {c[1] for c in cancels}
        if job.status is JobStatus.CANCELLED and cancels and answered == {"409"}:
            self.violate("I6", f"cancel of {job_id} answered 409, yet the job is cancelled")
        # a retry may run the job again: one asked after a cancel was answered, or one still
        # unanswered when that cancel was asked (concurrent: it may take effect after it)
        retries = [(c[2], c[3]) for c in info.controls
                   if c[0] == "retry" and c[1] in ("200", "error")]
        done = [(c[2], c[3]) for c in cancels if c[1] == "200"]
        if done and job.status is not JobStatus.CANCELLED and \
                not any(_may_follow(r, cancel) for r in retries for cancel in done):
            self.violate("I6", f"cancel of {job_id} answered 200, yet it ended "
                               f"{job.status.value}")
        for _op, answer, began, at, _ in cancels:
            if answer == "200":
                until = min([b for b, e in retries if _may_follow((b, e), (began, at))],
                            default=float("inf"))
                late = [i for i in self.by_job.get(job_id, []) if at < i.start < until]
                if late:
                    self.violate("I6", f"{job_id} started at {late[0].start:.3f} after its "
                                       f"cancel was answered 200 at {at:.3f}")
        for k, (answer, began, at, payload) in enumerate(info.updates):
            if answer != "200":
                continue
            # from the answer until another update that may take effect after it was asked
            # for, every start sees it
            until = min([b for j, (_, b, e, _) in enumerate(info.updates)
                         if j != k and _may_follow((b, e), (began, at))], default=float("inf"))
            stale = [i for i in self.by_job.get(job_id, [])
                     if at < i.start < until and i.payload != payload]
            if stale:
                self.violate("I6", f"{job_id} started at {stale[0].start:.3f} with payload "
                                   f"{stale[0].payload!r}, after an update to {payload!r} was "
                                   f"answered 200 at {at:.3f}")
        for _op, answer, began, at, _ in (c for c in info.controls if c[0] == "pause"):
            if answer != "200":
                continue  # (an ambiguous pause may or may not hold the job)
            # held from the answer until a resume (of any answer) was asked for, or a retry
            # (a paused job can be cancelled, and a cancelled one retried)
            until = min([c[2] for c in info.controls if c[0] in ("resume", "retry") and
                         _may_follow((c[2], c[3]), (began, at))], default=float("inf"))
            held = [i for i in self.by_job.get(job_id, []) if at < i.start < until]
            if held:
                self.violate("I6", f"{job_id} started at {held[0].start:.3f} while paused "
                                   f"(pause answered 200 at {at:.3f})")

    def _explained(self, job_id: str, since: float, until: float) -> str | None:
        for at, cause in self.taints.get(job_id, []):
            if since - 1e-6 <= at <= until + 1e-6:
                return cause
        return None

    def _check_timely(self, finals: dict[str, Job]) -> None:
        """I11 (see the module doc): a healthy system runs work on time. An attempt is ready
        at its due time, or when the job was created or a control last changed it, if later
        (a job may be created, or rescheduled, due in the past)."""
        healthy_from = world_time(self.faults_end + HEALTHY_AFTER_S)
        bound = timedelta(seconds=self.config.settings.max_sleep_seconds + 60)
        for job_id, invs in self.by_job.items():
            job, info = finals.get(job_id), self.jobs.get(job_id)
            for inv in invs:
                ready = max(inv.due_at, job.created_at if job is not None else inv.due_at)
                if info is not None:
                    changed = [c[3] for c in info.controls if c[3] <= inv.start]
                    if changed:
                        ready = max(ready, world_time(max(changed)))
                late = world_time(inv.start) - ready
                if ready >= healthy_from and late > bound:
                    self.violate("I11", f"{job_id} run {inv.run} attempt {inv.attempt} ready "
                                        f"{ready:%H:%M:%S} started {late.total_seconds():.0f}"
                                        f" s late, with no fault for 10 minutes")
                    return

    def _check_invocations(self) -> None:
        for job_id, invs in self.by_job.items():
            info = self.jobs.get(job_id)
            for inv in invs:
                if world_time(inv.start) < inv.due_at - timedelta(milliseconds=1):
                    self.violate("I2", f"{job_id} run {inv.run} attempt {inv.attempt} started "
                                       f"{world_time(inv.start):%H:%M:%S.%f}, due "
                                       f"{inv.due_at:%H:%M:%S.%f}")
            if info is not None and not info.recurring and not info.controls and info.created:
                firsts = [i for i in invs if i.attempt == 1 and i.run == 0]
                for inv in firsts:
                    if inv.due_at != info.due_at:
                        self.violate("I2", f"{job_id} ran for due {inv.due_at} but was accepted "
                                           f"due {info.due_at}")
            by_run: dict[int, list[Invocation]] = defaultdict(list)
            for inv in invs:
                by_run[inv.run].append(inv)
            for run, group in by_run.items():
                group.sort(key=lambda i: i.start)
                for k in range(1, len(group)):
                    later = group[k]
                    for earlier in group[:k]:
                        ran = earlier.ok is True or earlier.end is None or \
                            earlier.end > later.start
                        if not ran:
                            if earlier.error == "ProcessCrashed" and earlier.attempt == \
                                    later.attempt - 1:
                                self.duplicates["re-run after a crash interrupted it"] += 1
                            continue
                        cause = self._explained(job_id, earlier.start, later.start)
                        if cause is None:
                            self.duplicates["unexplained"] += 1
                            self.violate("I3", f"{job_id} run {run}: attempt {later.attempt} at "
                                               f"{later.start:.3f} re-ran attempt "
                                               f"{earlier.attempt} of {earlier.start:.3f} "
                                               f"({'ok' if earlier.ok else earlier.error}) with "
                                               "no crash or ambiguous write")
                        else:
                            self.duplicates[cause.split(" of ")[0]] += 1
                        break

    def _check_limits(self) -> None:
        """I12: a limited handler never runs more attempts at once than its max_concurrency,
        nor starts more than its bucket allows (max(1, rate) at once, then ``rate`` a second)
        in any second, whatever the crashes and storage faults."""
        for name, (most, rate) in LIMITED.items():
            invs = sorted((i for i in self.invocations if i.handler == name),
                          key=lambda i: i.start)
            undos = [i for i in self.compensating if i.handler == name]
            self.ops[f"{name} invocations"] += len(invs)
            self.ops[f"{name} compensations"] += len(undos)
            running = sorted([*invs, *undos], key=lambda i: i.start)
            for k, inv in enumerate(running):
                overlapping = [i for i in running[:k] if i.end is None or i.end > inv.start]
                if len(overlapping) >= most:
                    what = "compensation of" if any(inv is u for u in undos) else "attempt of"
                    self.violate("I12", f"{what} {inv.job_id} started at {inv.start:.3f} "
                                        f"while {len(overlapping)} other {name} attempts or "
                                        f"compensations ran (max_concurrency {most})")
                    return
                window = [i for i in invs[k:] if i.start < inv.start + 1.0]
                if len(window) > max(1.0, rate) + rate:
                    self.violate("I12", f"{len(window)} {name} attempts started within 1 s "
                                        f"of {inv.start:.3f} (max_per_second {rate})")
                    return

    def _check_compensations(self, finals: dict[str, Job]) -> None:
        """I3: a run is compensated only when it did not succeed, and once, unless a crash or
        an ambiguous write (between the two) explains the repeat (counted by its cause)."""
        by_run: dict[tuple[str, int], list[float]] = defaultdict(list)
        for job_id, run, at in self.compensations:
            by_run[(job_id, run)].append(at)
            succeeded = [i for i in self.by_job.get(job_id, []) if i.run == run and i.ok]
            if succeeded and self._explained(job_id, succeeded[0].start, at) is None:
                self.violate("I3", f"{job_id} run {run} was compensated at {at:.3f} although "
                                   f"attempt {succeeded[0].attempt} succeeded at "
                                   f"{succeeded[0].end:.3f}")
        for (job_id, run), ats in by_run.items():
            ats.sort()
            for earlier, later in itertools.pairwise(ats):
                cause = self._explained(job_id, earlier, later)
                if cause is None:
                    self.violate("I3", f"{job_id} run {run} was compensated again at "
                                       f"{later:.3f} (first at {earlier:.3f}) with no crash or "
                                       "ambiguous write")
                else:
                    self.duplicates[f"compensated again: {cause.split(' of ')[0]}"] += 1

    def _purged_ok(self, job_id: str) -> bool:
        """404 is fine for a job a purge may legitimately have removed: final before the
        cutoff (judged from its last invocation or control)."""
        info = self.jobs.get(job_id)
        if info is None or not self.purges:
            return info is None
        if info.recurring and not any(c[0] == "cancel" and c[1] in ("200", "error")
                                      for c in info.controls):
            return False  # a recurring job is never final unless cancelled
        last = max([i.end or i.start for i in self.by_job.get(job_id, [])] +
                   [c[3] for c in info.controls if c[1] == "200"] + [info.at])
        return any(cutoff > EPOCH + timedelta(seconds=last) for _, cutoff, _ in self.purges)


def _may_follow(other: tuple[float, float], control: tuple[float, float]) -> bool:
    """Whether a control asked and answered over ``other`` (began, answered) may take effect
    after ``control``: it was not answered before ``control`` was asked (concurrent controls
    apply in either order; seed 30491: two updates 0.06 s apart, both answered 200, the later
    answer's applied last)."""
    return other[1] > control[0]


def _period(recurrence: Any) -> timedelta:
    if isinstance(recurrence, dict) and recurrence.get("interval_seconds"):
        return timedelta(seconds=float(recurrence["interval_seconds"]))
    cron = recurrence.get("cron", "") if isinstance(recurrence, dict) else ""
    if cron.startswith("*/"):
        return timedelta(minutes=int(cron.split()[0][2:]))
    if cron.startswith("0 * "):
        return timedelta(hours=1)
    return timedelta(days=1)
