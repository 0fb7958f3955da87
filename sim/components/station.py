"""A service station: one instance of a tier, with ``workers`` servers and a FIFO queue.

Jobs are callbacks, not SimPy processes: ``submit(cost_s, fn, arg)`` runs
``fn(arg)`` when the job has waited for a free worker and then held it for
``cost_s``. That keeps a message's path to a few heap operations, which is what
lets a run simulate a million users.

The station keeps time-weighted integrals of busy workers and queue length,
and, for jobs that arrive after ``measure_from_s``, the count, total wait and
count of jobs that had to wait: exactly what an M/M/c comparison needs
(mean wait, P(wait) by PASTA).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sim.core.kernel import Kernel

Job = Callable[[Any], None]


class Station:
    """One instance of a tier: ``workers`` identical servers sharing one FIFO queue.

    Subclasses are not expected; a tier is a list of stations plus a balancer.

    **Extension points.** New behaviour is built on the station from outside,
    through four surfaces:

    * *Work.* Anything that needs a worker of an instance is a job:
      ``submit(cost_s, fn, arg)``, with the service time in seconds drawn by the
      caller (the message path's samplers are in ``sim.model.costs``) and
      ``fn(arg)`` called when the job is done. A new kind of request, or a new
      tier made of instances (as the authorization server,
      :class:`sim.components.security.auth.AuthServer`, and the nodes of a store or
      broker, :class:`sim.components.durable.Cluster`, are), needs no change
      here; its stations join the model's list of stations, which the sampler
      and the readout walk.
    * *Faults.* :meth:`crash` (the jobs queued and in service are lost, and
      ``epoch`` moves on), :meth:`recover`, :meth:`pause` and ``factor`` (service
      times multiplied: a slow node) are what the fault kinds
      (``sim.model.faults.kinds``) do to an instance; a new kind of fault on an
      instance is written in terms of them. Work a
      caller keeps outside the station (a consumer's poll loop) compares
      ``epoch`` before and after to notice a crash in between, and ``up`` says
      whether a job submitted now would be dropped.
    * *Load.* Balancers read ``busy`` and ``queue`` (least outstanding, power
      of two choices) and ``up`` (health checks); :attr:`outstanding` is their
      sum.
    * *Statistics.* The run's sampler reads :meth:`integrals` each interval;
      the readout reads ``measured``, ``waited``, ``wait_sum_s``,
      ``service_sum_s`` and ``max_queue`` (the per-station frame that the
      queueing-theory validation compares with exact results), and
      ``Server.counters()`` sums ``dropped``. A new statistic is a slot, kept up
      to date in :meth:`submit` and ``_finish``.

    The queue discipline is not an extension point: FIFO order is written into
    :meth:`submit`, ``_finish`` and ``_resume``, which run for every job of
    every tier, with the accounting inlined and every attribute in
    ``__slots__``; anything added there is paid once per job.
    """

    __slots__ = (
        "_after",
        "_done",
        "_kernel",
        "_last_s",
        "busy",
        "busy_area",
        "dropped",
        "epoch",
        "factor",
        "index",
        "jobs",
        "max_queue",
        "measure_from_s",
        "measured",
        "paused_until",
        "queue",
        "queue_area",
        "service_sum_s",
        "tier",
        "up",
        "wait_sum_s",
        "waited",
        "workers",
    )

    def __init__(
        self, kernel: Kernel, tier: str, index: int, workers: int, measure_from_s: float
    ) -> None:
        self._kernel = kernel
        self._after = kernel.after
        self._done = self._finish  # one bound method, not one per job
        self.tier = tier
        self.index = index
        self.workers = workers
        self.measure_from_s = measure_from_s
        self.busy = 0
        self.queue: deque[tuple[float, float, Job, Any]] = deque()
        self._last_s = 0.0
        self.busy_area = 0.0
        self.queue_area = 0.0
        self.jobs = 0
        self.measured = 0
        self.waited = 0
        self.wait_sum_s = 0.0
        self.service_sum_s = 0.0
        self.max_queue = 0
        #: False while the instance is crashed: jobs submitted then are dropped
        self.up = True
        #: incremented by each crash, so that work in progress at the crash is lost
        self.epoch = 0
        self.dropped = 0
        #: service times are multiplied by this (a slow node: a failing disk, a noisy neighbour)
        self.factor = 1.0
        #: while ``now < paused_until`` no job starts or finishes (a stop-the-world pause)
        self.paused_until = -1.0

    @property
    def name(self) -> str:
        return f"{self.tier}.{self.index}"

    @property
    def outstanding(self) -> int:
        """Jobs in service plus jobs waiting: what least-outstanding balancing looks at."""
        return self.busy + len(self.queue)

    def _account(self, now: float) -> None:
        dt = now - self._last_s
        if dt > 0.0:
            self.busy_area += self.busy * dt
            self.queue_area += len(self.queue) * dt
            self._last_s = now

    def submit(self, cost_s: float, fn: Job, arg: Any) -> None:
        """Queue a job that needs ``cost_s`` of one worker, then calls ``fn(arg)``."""
        if not self.up:
            self.dropped += 1
            return
        now = self._kernel.now
        queue = self.queue
        dt = now - self._last_s
        if dt > 0.0:  # _account, inlined: this runs for every job of every tier
            self.busy_area += self.busy * dt
            if queue:
                self.queue_area += len(queue) * dt
            self._last_s = now
        self.jobs += 1
        if self.factor != 1.0:
            cost_s *= self.factor
        measured = now >= self.measure_from_s
        if measured:
            self.measured += 1
            self.service_sum_s += cost_s
        if self.busy < self.workers and now >= self.paused_until:
            self.busy += 1
            self._after(cost_s, self._done, (fn, arg, self.epoch))
            return
        if measured:
            self.waited += 1
            queue.append((now, cost_s, fn, arg))
        else:
            queue.append((-1.0, cost_s, fn, arg))
        if len(queue) > self.max_queue:
            self.max_queue = len(queue)

    def _finish(self, job: tuple[Job, Any, int]) -> None:
        fn, arg, epoch = job
        if epoch != self.epoch:
            return  # the instance crashed while this job was in service: it is lost
        now = self._kernel.now
        if now < self.paused_until:
            # paused mid-job: it completes when the pause ends
            self._after(self.paused_until - now, self._done, job)
            return
        queue = self.queue
        dt = now - self._last_s
        if dt > 0.0:
            self.busy_area += self.busy * dt
            if queue:
                self.queue_area += len(queue) * dt
            self._last_s = now
        if queue:
            enqueued_s, cost_s, nfn, narg = queue.popleft()
            if enqueued_s >= 0.0:
                self.wait_sum_s += now - enqueued_s
            self._after(cost_s, self._done, (nfn, narg, epoch))
        else:
            self.busy -= 1
        fn(arg)

    def crash(self) -> int:
        """The instance stops: queued jobs and jobs in service are lost; returns how many."""
        self._account(self._kernel.now)
        lost = self.busy + len(self.queue)
        self.dropped += lost
        self.queue.clear()
        self.busy = 0
        self.epoch += 1
        self.up = False
        return lost

    def recover(self) -> None:
        """The instance is back, empty."""
        self._account(self._kernel.now)
        self.up = True

    def pause(self, duration_s: float) -> None:
        """Stop the world for ``duration_s``: jobs wait, none is lost."""
        now = self._kernel.now
        self.paused_until = max(self.paused_until, now + duration_s)
        self._after(self.paused_until - now, self._resume, self.paused_until)

    def _resume(self, until_s: float) -> None:
        if until_s != self.paused_until or not self.up:
            return  # a longer pause began meanwhile, or the instance crashed
        now = self._kernel.now
        self._account(now)
        epoch = self.epoch
        while self.queue and self.busy < self.workers:
            enqueued_s, cost_s, fn, arg = self.queue.popleft()
            if enqueued_s >= 0.0:
                self.wait_sum_s += now - enqueued_s
            self.busy += 1
            self._after(cost_s, self._done, (fn, arg, epoch))

    def integrals(self, now: float) -> tuple[float, float]:
        """Busy-worker-seconds and queue-length-seconds accumulated up to ``now``."""
        self._account(now)
        return self.busy_area, self.queue_area
