"""``jobsctl``: the command line of the jobs API (not ``jobs``: that is a shell builtin, which
bash and zsh run instead of any ``jobs`` on the PATH).

    jobsctl schedule echo --payload '{"hello": "world"}' --delay 5 --wait 30
    jobsctl list --status failed
    jobsctl watch <id>

The URL and key come from ``--url``/``--key`` or ``JOBS_URL``/``JOBS_KEY`` (the environment
keeps the key out of the process list). ``--json`` prints JSON: one object, or one per line for
``list`` and ``watch``.

Exit codes (``EXIT_CODES``):
  0  done (``wait``, ``watch``, ``schedule --wait``: the job succeeded, or a recurring job's
     run finished)
  1  the job failed or was cancelled (``wait``, ``watch``, ``schedule --wait``)
  2  usage: bad arguments, or the API refused the request as invalid (400, 413, 415)
  3  not found (404)
  4  conflict (409): the job's state does not allow it; nothing changed
  5  server error or unavailable (5xx after the client's retries, no connection, a reply
     that is not the API's)
  6  timed out waiting (``wait``, ``watch --timeout``, ``schedule --wait``): not finished yet
  7  unauthorized (401): no key or a wrong one
  130 interrupted (Ctrl-C)
  141 the output's reader went away (``jobsctl --json list | head -1``)
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import httpx

from . import _cli_input as read
from . import _cli_output as show
from . import errors
from ._cli_input import UsageError
from ._common import InvalidKey
from .client import JobsClient
from .models import Job, JobStatus, Recurrence, RetryPolicy

OK, JOB_FAILED, USAGE, NOT_FOUND, CONFLICT, SERVER, TIMED_OUT, UNAUTHORIZED = range(8)
INTERRUPTED = 130
PIPE_CLOSED = 141  # 128 + SIGPIPE, what a shell reports for a command its reader left
EXIT_CODES = {
    OK: "done (the awaited job succeeded)", JOB_FAILED: "the awaited job failed or was cancelled",
    USAGE: "bad arguments, or the request was refused as invalid (400, 413, 415)",
    NOT_FOUND: "not found (404)", CONFLICT: "conflict (409): nothing changed",
    SERVER: "server error or unavailable (5xx, no connection)",
    TIMED_OUT: "timed out waiting: the job has not finished", UNAUTHORIZED: "unauthorized (401)",
    INTERRUPTED: "interrupted", PIPE_CLOSED: "the output's reader went away (| head)",
}
ERROR_EXIT: list[tuple[type[errors.JobsClientError], int]] = [
    (errors.BadRequest, USAGE), (errors.NotFound, NOT_FOUND), (errors.Conflict, CONFLICT),
    (errors.Unauthorized, UNAUTHORIZED), (errors.WaitTimeout, TIMED_OUT),
]
STATUSES = [s.value for s in JobStatus]
Command = Callable[[JobsClient, argparse.Namespace, TextIO, TextIO], int]  # client, args, out, err


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options every command takes, before or after its name."""
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection and output")
    group.add_argument("--url", default=default,
                       help="the app, e.g. http://127.0.0.1:7071 (default: $JOBS_URL, else "
                            "that)")
    group.add_argument("--key", default=default,
                       help="the function key (default: $JOBS_KEY)")
    group.add_argument("--json", action="store_true",
                       default=argparse.SUPPRESS if suppress else False,
                       help="print JSON (one object; one per line for list and watch)")
    group.add_argument("--http-timeout", type=read.some_seconds, metavar="S",
                       default=argparse.SUPPRESS if suppress else 30.0,
                       help="seconds for one HTTP request (default 30)")


def _job_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", metavar="ID", help="the job's id")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobsctl", description="Schedule and follow jobs of the durable jobs API.",
        epilog="exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()))
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        _common(p, suppress=True)
        return p

    p = command("schedule", "schedule a job (a registered handler with a JSON payload)")
    p.add_argument("handler")
    payload = p.add_mutually_exclusive_group()
    payload.add_argument("--payload", metavar="JSON", help="the payload as JSON")
    payload.add_argument("--payload-file", metavar="PATH", help="read the payload (JSON) "
                                                                "from a file, - for stdin")
    due = p.add_mutually_exclusive_group()
    due.add_argument("--at", metavar="TIME", help="due time, ISO-8601 with an offset")
    due.add_argument("--delay", type=read.finite, metavar="S", help="due in S seconds")
    every = p.add_mutually_exclusive_group()
    every.add_argument("--cron", metavar="EXPR", help="recur on a 5-field cron expression")
    every.add_argument("--every", type=read.finite, metavar="S", help="recur every S seconds")
    p.add_argument("--tz", metavar="ZONE", help="time zone of --cron (default UTC)")
    p.add_argument("--idempotency-key", metavar="KEY")
    p.add_argument("--max-attempts", type=int, metavar="N")
    p.add_argument("--notify", metavar="QUEUE", help="queue for this job's events")
    p.add_argument("--timeout-seconds", type=read.finite, metavar="S", help="per-attempt timeout")
    p.add_argument("--label", action="append", metavar="KEY:VALUE",
                   help="a label (repeat for more)")
    p.add_argument("--wait", type=read.seconds, metavar="S",
                   help="wait up to S seconds for the job to finish (exit 0/1/6)")

    _job_id(command("get", "show a job"))
    p = command("list", "list jobs as a table, following pages")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--handler")
    p.add_argument("--label", action="append", metavar="KEY[:VALUE]",
                   help="only jobs with this label (any value without :VALUE); repeat: all")
    p.add_argument("--slot", type=int)
    p.add_argument("--from", dest="due_from", metavar="TIME", help="due at or after")
    p.add_argument("--to", dest="due_to", metavar="TIME", help="due before")
    p.add_argument("--limit", type=read.count, default=50, metavar="N",
                   help="show at most N jobs (default 50; 0: all)")
    p.add_argument("--page-size", type=int, metavar="N", help="jobs per request (1-500)")
    p = command("cancel", "cancel a waiting or paused job")
    _job_id(p)
    p.add_argument("--reason")
    for name, text in (("run-now", "make a waiting job due now"),
                       ("retry", "run a failed or cancelled job again, as a new run"),
                       ("pause", "hold a waiting job"), ("resume", "let a paused job wait again"),
                       ("history", "every record of a job")):
        _job_id(command(name, text))
    p = command("reschedule", "give a waiting job a new due time")
    _job_id(p)
    due = p.add_mutually_exclusive_group(required=True)
    due.add_argument("--at", metavar="TIME", help="ISO-8601 with an offset")
    due.add_argument("--delay", type=read.finite, metavar="S")
    p = command("wait", "wait until a job is final (a recurring one: its next run finished)")
    _job_id(p)
    p.add_argument("--timeout", type=read.seconds, default=60.0, metavar="S", help="default 60")
    p = command("watch", "print a job's changes until it is final")
    _job_id(p)
    p.add_argument("--interval", type=read.some_seconds, default=1.0, metavar="S",
                   help="default 1")
    p.add_argument("--timeout", type=read.seconds, metavar="S", help="give up after S seconds")
    command("status", "the scheduler's slots and figures")
    command("start", "make sure every slot's orchestrator runs")
    return parser


def _outcome(job: Job) -> int:
    return JOB_FAILED if job.status in (JobStatus.FAILED, JobStatus.CANCELLED) else OK


def cmd_schedule(client: JobsClient, args: argparse.Namespace, out: TextIO,
                 err: TextIO) -> int:
    if args.tz and not args.cron:
        raise UsageError("--tz goes with --cron")
    recurrence = (Recurrence(cron=args.cron, timezone=args.tz) if args.cron
                  else Recurrence(interval_seconds=args.every) if args.every is not None
                  else None)
    # (0 goes to the API, which refuses it: it was dropped, and the job got the default)
    retry = RetryPolicy(max_attempts=args.max_attempts) if args.max_attempts is not None \
        else None
    labels = dict(read.label(text) for text in args.label or [])
    options: dict[str, Any] = dict(
        due_at=args.at, delay=args.delay, idempotency_key=args.idempotency_key, retry=retry,
        recurrence=recurrence, notify=args.notify, timeout_seconds=args.timeout_seconds,
        labels=labels or None)
    if args.wait is None:
        job = client.schedule(args.handler, read.payload(args), **options)
        _print(out, args, job)
        return OK
    try:
        job = client.schedule_and_wait(args.handler, read.payload(args), timeout=args.wait,
                                       **options)
    except errors.WaitTimeout as exc:
        _print(out, args, exc.job)  # scheduled all the same: the id is in the output
        raise
    _print(out, args, job)
    return _outcome(job)


def cmd_list(client: JobsClient, args: argparse.Namespace, out: TextIO,
             err: TextIO) -> int:
    for text in args.label or []:  # (joined with commas below, as the API wants them)
        if "," in text:
            raise UsageError(f"--label {text!r}: a label filter cannot hold a comma (the API "
                             "splits filters at commas); repeat --label for more")
    jobs = client.iter_jobs(status=args.status, handler=args.handler, slot=args.slot,
                            due_from=args.due_from, due_to=args.due_to,
                            page_size=args.page_size,
                            label=",".join(args.label) if args.label else None)
    shown: list[Job] = []
    for job in jobs:
        if args.limit and len(shown) >= args.limit:
            err.write(f"jobsctl list: the first {args.limit} jobs; --limit 0 lists all\n")
            break
        if args.json:
            show.print_json(out, job)
        shown.append(job)
    if not args.json:
        show.table(out, show.JOB_HEADER, (show.job_row(j) for j in shown))
    return OK


def cmd_wait(client: JobsClient, args: argparse.Namespace, out: TextIO,
             err: TextIO) -> int:
    try:
        job = client.wait(args.job_id, timeout=args.timeout)
    except errors.WaitTimeout as exc:
        _print(out, args, exc.job)
        raise
    _print(out, args, job)
    return _outcome(job)


def cmd_watch(client: JobsClient, args: argparse.Namespace, out: TextIO,
              err: TextIO) -> int:
    last = None
    for job in client.watch(args.job_id, interval=args.interval, timeout=args.timeout):
        if args.json:
            show.print_json(out, job)
        else:
            out.write(show.change_line(job) + "\n")
        out.flush()
        last = job
    assert last is not None  # watch yields the job at least once
    return _outcome(last)


def _print(out: TextIO, args: argparse.Namespace, model: Any,
           human: Callable[[TextIO, Any], None] = show.print_job) -> None:
    if args.json:
        show.print_json(out, model)
    else:
        human(out, model)


def _control(action: Callable[[JobsClient, argparse.Namespace], Any],
             human: Callable[[TextIO, Any], None] = show.print_job
             ) -> Command:
    def run(client: JobsClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        _print(out, args, action(client, args), human)
        return OK
    return run


COMMANDS: dict[str, Command] = {
    "schedule": cmd_schedule,
    "get": _control(lambda c, a: c.get(a.job_id)),
    "list": cmd_list,
    "cancel": _control(lambda c, a: c.cancel(a.job_id, a.reason)),
    "run-now": _control(lambda c, a: c.run_now(a.job_id)),
    "retry": _control(lambda c, a: c.retry(a.job_id)),
    "pause": _control(lambda c, a: c.pause(a.job_id)),
    "resume": _control(lambda c, a: c.resume(a.job_id)),
    "reschedule": _control(lambda c, a: c.reschedule(a.job_id, due_at=a.at, delay=a.delay)),
    "history": _control(lambda c, a: c.history(a.job_id), show.print_history),
    "wait": cmd_wait,
    "watch": cmd_watch,
    "status": _control(lambda c, a: c.status(), show.print_status),
    "start": _control(lambda c, a: c.start(), show.print_start),
}


def exit_code(error: errors.JobsClientError) -> int:
    for cls, code in ERROR_EXIT:
        if isinstance(error, cls):
            return code
    return SERVER


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run one command; returns the exit code (``EXIT_CODES``)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    code = _command(args, out, err)
    try:  # here, not at the interpreter's exit: a pipe's output waits in the buffer until then
        out.flush()
    except BrokenPipeError:
        _drop_output(out)
        return PIPE_CLOSED
    return code


def _command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        with JobsClient(args.url, args.key, timeout=args.http_timeout) as client:
            return COMMANDS[args.command](client, args, out, err)
    except (UsageError, InvalidKey) as exc:
        err.write(f"jobsctl {args.command}: {exc}\n")
        return USAGE
    except errors.JobsClientError as exc:
        err.write(f"jobsctl {args.command}: {exc}\n")
        return exit_code(exc)
    except httpx.InvalidURL as exc:
        err.write(f"jobsctl {args.command}: the request's URL is not valid (--url, $JOBS_URL, "
                  f"or filters too long): {exc}\n")
        return USAGE
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:  # (an OSError: it was exit 2, "usage", with "[Errno 32] Broken
        # pipe" on stderr, and Python's own complaint when it flushed stdout at exit)
        _drop_output(out)
        return PIPE_CLOSED
    except OSError as exc:  # a payload file that cannot be read
        err.write(f"jobsctl {args.command}: {exc}\n")
        return USAGE


def _drop_output(out: TextIO) -> None:
    """Point the closed pipe at /dev/null, so the interpreter's last flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # not a file (a test's buffer)
        pass


def run() -> None:
    """The console script."""
    sys.exit(main())
