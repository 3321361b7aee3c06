"""Jobs waiting for worker processes, and how many go in one batch.

A job is a list of attempts with one shared ``kwargs`` and one callback that gets their
results. Until an attempt has been measured, a batch holds one attempt and jobs are small
(the first ones one per worker, then doubling up to ``UNMEASURED_JOB``), so work spreads over
every worker from the first item and slow attempts never queue up together. Once measured,
a batch holds about ``BATCH_SECONDS`` of work, at most ``batch_max`` attempts: process feeders
take queued jobs up to a fair share of the queue, and cut a job larger than that, its parts
answering as one. The estimate weighs batches by their attempts, so a small batch that
waited behind a large one does not shrink every batch. A batch whose worker died re-runs
attempt by attempt ("alone"), reassembled per job.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from opero.maps.jobs import (
    BATCH_SECONDS,
    JOB_MAX,
    UNMEASURED_JOB,
    Job,
    Piece,
    Whole,
    split,
)
from opero.maps.records import Outcome

__all__ = ["JobQueue"]


class JobQueue:
    """Jobs waiting for a worker, and the measured cost of an attempt."""

    def __init__(self, workers: int, batch_max: int, unmeasured: int = UNMEASURED_JOB) -> None:
        self.jobs: deque[Job] = deque()
        #: attempts per job at most before anything is measured
        self.unmeasured = unmeasured
        self.queued = 0  # attempts in the queue
        #: set when jobs arrive (bound to the loop that first waits on it)
        self.ready = asyncio.Event()
        self.workers = workers
        self.batch_max = batch_max
        #: measured seconds per attempt (moving average), to size batches
        self.per_attempt: float | None = None
        #: decayed sums behind per_attempt: weight, attempts, attempts², seconds, attempts x s
        self._sums = [0.0, 0.0, 0.0, 0.0, 0.0]
        self._last = (0, 0.0)  # the last batch measured: attempts, seconds
        self._spread = False  # the first attempts went one per worker
        self._ramp = 1  # attempts in the last job made before anything was measured

    def put(self, job: Job) -> None:
        self.jobs.append(job)
        self.queued += len(job.rows)
        self.ready.set()

    def resize(self, workers: int) -> None:
        """The workers turned out to be ``workers`` (an executor opened)."""
        self.workers = workers

    def wake(self) -> None:
        """Wake the feeders (jobs may be waiting)."""
        self.ready.set()

    def fail_all(self, exc: BaseException) -> None:
        """Every queued attempt fails with ``exc`` (the workers could not be had)."""
        while self.jobs:
            job = self.jobs.popleft()
            n = len(job.rows)
            job.callback([None] * n, dict.fromkeys(range(n), (exc, None)))
        self.queued = 0

    def remove(self, job: Job) -> bool:
        """Take ``job`` out of the queue (False: it is not there)."""
        for queued in self.jobs:
            if queued is job:
                self.jobs.remove(job)
                self.queued -= len(job.rows)
                return True
        return False

    def withdraw(self, marker: BaseException) -> None:
        """The map stopped: every queued job of first attempts fed in bulk answers at once,
        each attempt failed with ``marker`` (never run)."""
        kept: deque[Job] = deque()
        withdrawn: list[Job] = []
        for job in self.jobs:
            (withdrawn if job.fresh else kept).append(job)
        self.jobs = kept
        self.queued = sum(len(job.rows) for job in kept)
        for job in withdrawn:
            n = len(job.rows)
            job.callback([None] * n, dict.fromkeys(range(n), (marker, None)))

    def take(self) -> list[Job]:
        """The next batch: the first job (its first part, if it holds more than about
        BATCH_SECONDS of work), and more while they fit in one batch."""
        queue = self.jobs
        first = queue.popleft()
        jobs = [first]
        count = len(first.rows)
        if not first.alone:
            cap = self.batch_cap()
            if count > cap:
                first, rest = split(first, cap)
                queue.appendleft(rest)
                self.queued -= cap
                return [first]
            n = min(cap, max(1, math.ceil(self.queued / self.workers)))  # a fair share
            while queue and not queue[0].alone and count + len(queue[0].rows) <= n:
                job = queue.popleft()
                jobs.append(job)
                count += len(job.rows)
        self.queued -= count
        return jobs

    def batch_cap(self) -> int:
        """Attempts a batch may hold: about BATCH_SECONDS of work (measured; one attempt
        before anything is), never more than ``batch_max``."""
        per_attempt = self.per_attempt
        if per_attempt is None:
            return 1  # nothing measured yet: one at a time, spread over the workers
        cap = int(BATCH_SECONDS / per_attempt) if per_attempt > 0 else self.batch_max
        size, seconds = self._last
        if seconds < 2 * BATCH_SECONDS:  # a quick batch: try one twice its size (its time
            cap = max(cap, 2 * size)  # may be mostly a fixed cost per batch, e.g. Dask's)
        return min(self.batch_max, max(1, cap))

    def job_size(self, ready: int) -> int:
        """How many of ``ready`` attempts a caller should put in one job once attempts are
        measured: about half a batch's worth (few for slow attempts, so they spread over
        workers). Before that, see :meth:`spans`."""
        if self.batch_max == 1:
            return 1
        per_attempt = self.per_attempt
        if per_attempt is None:
            return max(1, min(self.unmeasured, math.ceil(ready / (self.workers * 4))))
        if per_attempt <= 0:
            return JOB_MAX
        return max(1, min(JOB_MAX, int(BATCH_SECONDS / per_attempt / 2)))

    def spans(self, ready: int) -> list[tuple[int, int]]:
        """``(start, end)`` of the jobs to make of ``ready`` attempts. Before anything is
        measured, the first attempts go one per worker, so every worker starts at once and
        the first result comes about one attempt's time after the start; then jobs double
        from 2 attempts up to ``UNMEASURED_JOB`` (a job answers once and its attempts may be
        slow, so the first results come in small groups); once measured, :meth:`job_size`."""
        spans: list[tuple[int, int]] = []
        start = 0
        if self.per_attempt is None and self.batch_max > 1:
            if not self._spread:
                self._spread = True
                for _ in range(min(ready, self.workers)):
                    spans.append((start, start + 1))
                    start += 1
            cap = self.job_size(ready - start)
            while start < ready:
                self._ramp = min(cap, self._ramp * 2)
                spans.append((start, min(ready, start + self._ramp)))
                start += self._ramp
            return spans
        size = self.job_size(ready)
        while start < ready:
            spans.append((start, min(ready, start + size)))
            start += size
        return spans

    def measure(self, seconds: float, attempts: int) -> None:
        """A batch of ``attempts`` took ``seconds`` (from its sending: with the round trip
        and any wait behind the batch before it). The time of one attempt is the slope of
        ``seconds = overhead + attempts x per_attempt`` over the recent batches (least squares,
        the weight of the past halved at each batch), so a fixed cost per batch (a Dask round
        trip, a fresh worker) does not make every batch small; before batches of different
        sizes are seen, and as a floor against noise, the plain average counts too."""
        w, n, nn, t, nt = (x / 2 for x in self._sums)
        w, n, nn, t, nt = (
            w + 1,
            n + attempts,
            nn + attempts**2,
            t + seconds,
            nt + attempts * seconds,
        )
        self._sums = [w, n, nn, t, nt]
        self._last = (attempts, seconds)
        average = t / n
        spread = w * nn - n * n
        slope = (w * nt - n * t) / spread if spread > 1e-9 * n * n else average
        self.per_attempt = max(slope, average / 16)

    def requeue(self, jobs: list[Job]) -> None:
        """Put a batch that never ran back at the front."""
        for job in reversed(jobs):
            self.jobs.appendleft(job)
            self.queued += len(job.rows)
        self.ready.set()

    def requeue_after_crash(
        self,
        jobs: list[Job],
        finished: dict[int, Outcome],
        all_started: bool,
        error: BaseException,
    ) -> None:
        """A batch whose worker died: finished attempts keep their outcomes; the attempt that
        was running (every unfinished one, if ``all_started``) fails with ``error`` and counts;
        the attempts after it never started and go back to the front of the queue."""
        running = len(finished)  # a sync batch runs in order: positions 0..running-1 ended
        position = 0
        again: list[Job] = []
        for job in jobs:
            whole = Whole(job.callback, len(job.rows))
            for n, row in enumerate(job.rows):
                outcome = finished.get(position)
                if outcome is not None:
                    whole.ended(n, outcome)
                elif all_started or position == running:
                    whole.fill(n, [None], {0: (error, None)})
                else:
                    again.append(Job([row], job.kwargs, Piece(whole, n), bare=job.bare))
                position += 1
        for job in reversed(again):
            self.jobs.appendleft(job)
        self.queued += len(again)
        self.ready.set()

    def requeue_solo(self, jobs: list[Job]) -> None:
        """Put a batch back attempt by attempt, each alone, reassembled per job."""
        solos: list[Job] = []
        for job in jobs:
            whole = Whole(job.callback, len(job.rows))
            for n, row in enumerate(job.rows):
                solos.append(Job([row], job.kwargs, Piece(whole, n), alone=True, bare=job.bare))
        for job in reversed(solos):
            self.jobs.appendleft(job)
        self.queued += len(solos)
        self.ready.set()
