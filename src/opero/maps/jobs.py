"""Jobs: attempts waiting for worker processes, with one callback each, and the parts a job
is cut into (a job larger than a batch, or re-run attempt by attempt after a crash), which
answer as one. How many attempts go in a job and a batch is :mod:`opero.maps.job_queue`.
"""

from __future__ import annotations

from collections.abc import Callable

from opero.maps.records import Failures, Kwargs, Outcome, Rows

__all__ = [
    "BATCH_SECONDS",
    "JOB_MAX",
    "REQUEUE",
    "UNMEASURED_JOB",
    "Failures",
    "Job",
    "JobCallback",
    "OneOutcome",
    "Piece",
    "Requeue",
    "Whole",
    "split",
]

BATCH_SECONDS = 0.025  #: target duration of one process batch, once attempts are measured
JOB_MAX = 256  #: attempts per job, at most
#: attempts per job before any is measured: they may be slow, and a job answers once
UNMEASURED_JOB = 32

Callback = Callable[[Outcome], None]
JobCallback = Callable[[list[object], Failures], None]


class Job:
    """Attempts with one shared ``kwargs``; ``callback(values, failures)`` gets their results
    (positions local to the job)."""

    __slots__ = ("alone", "bare", "callback", "fresh", "kwargs", "rows")

    def __init__(
        self,
        rows: Rows,
        kwargs: Kwargs,
        callback: JobCallback,
        alone: bool = False,
        bare: bool = False,
        fresh: bool = False,
    ) -> None:
        self.rows = rows  # positional arguments per attempt (the argument itself if bare)
        self.kwargs = kwargs
        self.callback = callback
        self.alone = alone
        self.bare = bare
        #: the first attempts of items fed in bulk: withdrawn, unstarted, if the map stops
        #: while they wait in the queue
        self.fresh = fresh


class OneOutcome:
    """A job callback for one attempt, answering with an outcome."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callback) -> None:
        self.callback = callback

    def __call__(self, values: list[object], failures: Failures) -> None:
        if failures:
            exc, tb = failures[0]
            self.callback(Outcome(False, exc, tb))
        else:
            self.callback(Outcome(True, values[0]))


class Whole:
    """A job answering in parts (cut by :func:`split`, or re-run attempt by attempt): its
    callback runs once every part has answered."""

    __slots__ = ("callback", "failures", "left", "values")

    def __init__(self, callback: JobCallback, n: int) -> None:
        self.callback = callback
        self.values: list[object] = [None] * n
        self.failures: Failures = {}
        self.left = n

    def fill(self, offset: int, values: list[object], failures: Failures) -> None:
        self.values[offset : offset + len(values)] = values
        for n, failure in failures.items():
            self.failures[offset + n] = failure
        self.left -= len(values)
        if self.left == 0:
            self.callback(self.values, self.failures)

    def ended(self, n: int, outcome: Outcome) -> None:
        """Attempt ``n`` ended with ``outcome``."""
        if outcome.ok:
            self.fill(n, [outcome.value], {})
        else:
            self.fill(n, [None], {0: (outcome.error, outcome.tb)})


class Piece:
    """The callback of one part of a :class:`Whole`, from position ``offset``."""

    __slots__ = ("offset", "whole")

    def __init__(self, whole: Whole, offset: int) -> None:
        self.whole = whole
        self.offset = offset

    def __call__(self, values: list[object], failures: Failures) -> None:
        self.whole.fill(self.offset, values, failures)


def split(job: Job, n: int) -> tuple[Job, Job]:
    """``job`` as its first ``n`` attempts and the rest, answering as one job."""
    callback = job.callback
    if isinstance(callback, Piece):  # a part already: cut it further, not nested
        whole, base = callback.whole, callback.offset
    else:
        whole, base = Whole(callback, len(job.rows)), 0
    rows = job.rows
    head = Job(rows[:n], job.kwargs, Piece(whole, base), bare=job.bare, fresh=job.fresh)
    rest = Job(rows[n:], job.kwargs, Piece(whole, base + n), bare=job.bare, fresh=job.fresh)
    return head, rest


class Requeue:
    """The batch never ran: its worker died while it waited in the pipe."""


REQUEUE = Requeue()
