"""One run: build the model from a scenario, simulate it, and measure it.

``simulate(scenario, seed)`` is a pure function of its arguments. Timeline of
a run: users start in their stationary state (online ones already connected);
the workload sends from 0 to ``duration_s``; statistics cover sends from
``warmup_s`` to ``duration_s``; then, during ``drain_s``, nobody sends or goes
offline, every offline user with something to receive or send comes online
(spread out, so the drain itself is no reconnect storm) and the system settles,
so that a message still missing at the end is really lost.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from sim.core.kernel import Kernel
from sim.core.metrics import Recorder
from sim.model.client.clients import CONNECTED, Clients
from sim.model.costs import Costs
from sim.model.faults.injector import FaultInjector
from sim.model.protocol import SendCtx
from sim.model.result import Result
from sim.model.server.assembly import Server
from sim.model.transport import make_transport
from sim.scenario.calibration import load_calibration
from sim.scenario.schema import Scenario
from sim.workload.attack import AttackTraffic
from sim.workload.population import Conversations, Sessions, build_conversations
from sim.workload.traffic import Traffic

#: runs expected to take longer than this (wall-clock seconds) show a progress bar
PROGRESS_AFTER_S = 3.0


class Model:
    """Everything one run builds, wired together."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        conversations: Conversations | None = None,
        trace: bool = False,
        ack_lost: Callable[[SendCtx], bool] | None = None,
    ) -> None:
        """Build every part of a run.

        ``conversations`` replaces the drawn conversation graph (its user count
        must be ``workload.users``): scripted validations give exact memberships.
        ``trace`` keeps a digest of every event (time, callback and a summary of its
        argument, in order; see :class:`~sim.core.kernel.Trace`) in
        ``Result.meta["trace"]``: two runs with one seed must have the same.
        ``ack_lost`` is the clients' hook that loses chosen send acks (see
        :class:`~sim.model.client.clients.Clients`).
        """
        self.scenario = scenario
        self.seed = seed
        run = scenario.run
        self.kernel = Kernel(seed, trace=trace)
        streams = self.kernel.streams
        workload = scenario.workload
        if conversations is None:
            conversations = build_conversations(
                workload, streams.generator("workload.conversations")
            )
        elif len(conversations.user_ptr) - 1 != workload.users:
            raise ValueError(
                f"conversations cover {len(conversations.user_ptr) - 1} users, "
                f"the workload has {workload.users}"
            )
        self.convs = conversations
        self.sessions = Sessions(workload, streams, until_s=run.duration_s)
        self.horizon_s = run.duration_s + run.drain_s
        #: statistics start here during the run: the given warm-up, or 0 when MSER-5
        #: will detect it afterwards (sim.model.readout then cuts at the detected point)
        self.warmup_given = run.warmup_s is not None
        self.measure_from_s = run.warmup_s if run.warmup_s is not None else 0.0
        self.recorder = Recorder(
            run.interval_s, self.horizon_s, self.measure_from_s, run.duration_s
        )
        self.transport = make_transport(scenario.architecture.transport)
        self.costs = Costs(scenario, streams, load_calibration(), self.transport)
        self.server = Server(
            scenario, self.kernel, self.recorder, self.convs, self.costs, self.transport
        )
        self.clients = Clients(
            scenario,
            self.kernel,
            self.recorder,
            self.convs,
            self.costs,
            self.server,
            self.transport,
            ack_lost,
        )
        self.faults = FaultInjector(
            scenario.faults, self.kernel, self.server, scenario.architecture.zones
        )
        self.traffic = Traffic(workload, streams, self.convs, until_s=run.duration_s)
        self.attack = (
            AttackTraffic(
                workload.attack, streams, self.convs, workload.users, until_s=run.duration_s
            )
            if workload.attack.attackers
            else None
        )
        self.series: list[dict[str, float]] = []
        self.window_integrals: dict[str, tuple[float, float]] = {}
        self.integral_history: dict[int, dict[str, tuple[float, float]]] = {}

    def _connect_initial(self) -> None:
        """Users online at time 0 hold an established session already.

        They are spread over the gateways in turn, which is also what least
        connections does from empty instances.
        """
        online = np.frombuffer(self.sessions.online.flags, dtype=np.uint8).nonzero()[0]
        clients, server = self.clients, self.server
        balancer = server.gateway_balancer
        count = len(balancer.stations)
        for i, user in enumerate(online.tolist()):
            gw = i % count
            clients.epoch[user] = 1
            clients.state[user] = CONNECTED
            clients.gateway[user] = gw
            server.presence_gw[user] = gw
            server.presence_epoch[user] = 1
        for gw in range(count):
            balancer.connections[gw] += len(range(gw, len(online), count))
        balancer.skip(len(online))
        if clients.token_ttl_s > 0.0:
            # tokens of users already online were issued at random times before 0
            rng = self.kernel.streams.generator("client.token_phase")
            phases = rng.random(len(online)) * clients.token_ttl_s
            order = np.argsort(phases, kind="stable")  # renewals are queued in time order
            for user, phase in zip(online[order].tolist(), phases[order].tolist(), strict=True):
                clients.schedule_refresh(user, phase)
        if self.transport.polls:
            # polls of users already online start at random phases, not all at once
            rng = self.kernel.streams.generator("client.poll_phase")
            period = min(self.transport.poll_interval_s, 1.0)
            phases = rng.random(len(online)) * period
            for user, phase in zip(online.tolist(), phases.tolist(), strict=True):
                self.kernel.after(phase, self.clients.start_polling, user)

    def _toggle(self, user: int, online: bool) -> None:
        attack = self.attack
        if (
            attack is not None
            and attack.is_attacker[user]
            and attack.start_s <= self.kernel.now < attack.end_s
        ):
            self.sessions.online[user] = 1  # attackers stay connected while they flood
            return
        if online:
            self.clients.go_online(user)
        else:
            self.clients.go_offline(user)

    def _attack_begins(self, _: None) -> None:
        """The attackers' accounts come online, if they were not."""
        assert self.attack is not None
        for user in self.attack.active.tolist():
            if not self.clients.state[user]:
                self.sessions.online[user] = 1
                self.clients.go_online(user)

    def _behind(self) -> np.ndarray:
        """Per user: some conversation holds an accepted message beyond the cursor."""
        convs = self.convs
        accepted = np.frombuffer(self.server.next_seq, dtype=np.int32) - 1
        cursor = np.frombuffer(self.clients.cursor, dtype=np.int32)
        behind = accepted[convs.user_convs] > cursor
        owners = np.repeat(np.arange(len(convs.user_ptr) - 1), np.diff(convs.user_ptr))
        flagged = np.zeros(len(convs.user_ptr) - 1, dtype=bool)
        flagged[owners[behind]] = True
        return flagged

    def behind_users(self) -> np.ndarray:
        """Connected users (attackers aside) whose cursor in some conversation is behind
        the messages it holds: their syncs have not caught up."""
        convs = self.convs
        flagged = self._behind()
        connected = np.frombuffer(bytes(self.clients.state), dtype=np.uint8) == CONNECTED
        flagged &= connected
        if self.attack is not None:
            flagged &= np.frombuffer(bytes(self.attack.is_attacker), dtype=np.uint8) == 0
        # one's own messages beyond the cursor do not count: the sender displayed them
        # when it wrote them (with ack_after: broker the ack comes before their seq)
        log = self.server.log
        slot_conv = convs.user_convs
        still = []
        for user in np.flatnonzero(flagged).tolist():
            for slot in convs.slots_of(user):
                entries = log.get(int(slot_conv[slot]), ())
                if any(m.sender != user for m in entries[self.clients.cursor[slot] :]):
                    still.append(user)
                    break
        return np.asarray(still, dtype=np.int64)

    def waiting_users(self) -> np.ndarray:
        """Offline users with something to receive (a conversation with an accepted
        message beyond their cursor) or to send (an outbox)."""
        waiting = self._behind()
        for user in self.clients.outbox:
            waiting[user] = True
        offline = np.frombuffer(bytes(self.clients.state), dtype=np.uint8) == 0
        return np.flatnonzero(waiting & offline)

    def _drain(self) -> Generator[Any, Any, None]:
        """Bring offline users online so that every acked message can be displayed.

        Only users with something to receive or send need to come online for the
        accounting, so only they do: a run of a million users does not simulate
        hundreds of thousands of idle reconnects. Users are checked in rounds, each
        spread over ``drain_s / 8``, so that messages accepted during the drain
        (late retries) reach their offline recipients too.
        """
        env = self.kernel
        run = self.scenario.run
        yield env.timeout(run.duration_s)
        rng = self.kernel.streams.generator("run.drain")
        round_s = run.drain_s / 8
        end_s = run.duration_s + run.drain_s * 3 / 4
        while env.now < end_s:
            users = rng.permutation(self.waiting_users()).tolist()
            times = np.sort(rng.random(len(users)) * round_s).tolist()
            start = env.now
            for user, at in zip(users, times, strict=True):
                if start + at > env.now:
                    yield env.timeout(start + at - env.now)
                if not self.clients.state[user]:
                    self.sessions.online[user] = 1
                    self.clients.go_online(user)
            if env.now < start + round_s:
                yield env.timeout(start + round_s - env.now)

    def _sample(self) -> Generator[Any, Any, None]:
        env = self.kernel
        interval = self.scenario.run.interval_s
        previous = {s.name: s.integrals(0.0) for s in self.server.stations}
        broker = self.server.broker
        while True:
            # counts are taken when the interval starts (rates cover the whole interval)
            snapshot: dict[str, float] = {
                "online_users": self.sessions.online_count,
                "connected_users": self.clients.state.count(CONNECTED),
            }
            if broker is not None:
                snapshot["broker_backlog"] = broker.backlog()
            snapshot.update(self.server.defences.interval_start())
            yield env.timeout(interval)
            now = env.now
            if not self.warmup_given and now <= self.scenario.run.duration_s:
                # kept so that a warm-up detected afterwards can cut at any interval boundary
                self.integral_history[len(self.series) + 1] = {
                    s.name: s.integrals(now) for s in self.server.stations
                }
            row: dict[str, float] = {"t_s": now - interval, **snapshot}
            for tier in self._tiers():
                busy = queue = 0.0
                workers = 0
                for s in tier[1]:
                    b, q = s.integrals(now)
                    pb, pq = previous[s.name]
                    busy += b - pb
                    queue += q - pq
                    workers += s.workers
                    previous[s.name] = (b, q)
                row[f"{tier[0]}_utilisation"] = busy / (workers * interval)
                row[f"{tier[0]}_queue"] = queue / interval
            row.update(self.server.defences.interval_end(now - interval, now))
            self.series.append(row)

    def _tiers(self) -> list[tuple[str, list[Any]]]:
        tiers = [(self.server.gateways[0].tier, self.server.gateways)]
        if self.server.services:
            tiers.append(("service", self.server.services))
        tiers.append(("store", self.server.store.stations))
        if self.server.broker is not None:
            tiers.append(("broker", self.server.broker.stations))
        return tiers

    def _mark(self, label: str) -> Generator[Any, Any, None]:
        env = self.kernel
        at = self.measure_from_s if label == "from" else self.scenario.run.duration_s
        yield env.timeout(at)
        for s in self.server.stations:
            self.window_integrals[f"{s.name}:{label}"] = s.integrals(env.now)

    def run(self, progress: bool | None = None, release: bool = False) -> Result:
        """Simulate the whole run and measure it.

        Python's cyclic garbage collector is paused meanwhile: a run creates
        millions of short-lived, acyclic objects (messages, scheduled calls), and
        each collection would traverse every live message again. Reference
        counting still frees everything; the collector resumes afterwards.

        With ``release``, the model lets go of its messages and components while
        the results are built (:meth:`release`): what :func:`simulate` does, since
        nobody sees its model; keep the default to inspect the model afterwards.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(progress, release)
        finally:
            if collecting:
                gc.enable()

    def release(self) -> None:
        """Let go of the run's objects once the results have read them: the messages,
        the components and the pending events. A million-user hour holds about a
        gigabyte of them; the frames are built in the memory they leave. The
        recorder's columns, the conversations, the sessions and the attack's
        accounts stay. A released model cannot run or be inspected further.

        The components refer to each other (cycles only Python's collector would
        free, and a full collection costs about a microsecond per live object of
        the whole process: more than a small run itself). So the release takes
        them apart instead: the pending calls are dropped and each component's
        attributes cleared, and reference counting frees messages, logs and
        per-user arrays at once. The few small cycles left (a station's bound
        completion method) go with the collector's next pass.
        """
        self.recorder.messages = []
        # what outlives the release must not lead back to the components
        self.sessions.online.on_exceed = None
        if self.attack is not None:
            vars(self.attack).pop("_kernel", None)
            vars(self.attack).pop("_send", None)
        parts = [vars(self).pop(name, None) for name in _RELEASED]
        kernel = parts[_RELEASED.index("kernel")]
        if kernel is not None:
            kernel._queue.clear()  # pending calls hold components and messages
        for name in ("server", "clients"):
            owner = parts[_RELEASED.index(name)]
            if owner is not None:
                parts.extend(owner.parts())
        for part in parts:
            if part is not None:
                vars(part).clear()

    def _run(self, progress: bool | None, release: bool = False) -> Result:
        started = time.perf_counter()
        env = self.kernel
        self._connect_initial()
        self.faults.start()
        self.sessions.start(self.kernel, self._toggle)
        self.traffic.start(self.kernel, self.sessions.online, self.clients.send)
        if self.attack is not None:
            self.kernel.after(self.attack.start_s, self._attack_begins, None)
            payload = AttackTraffic.payload_sampler(
                self.scenario.workload.payload_bytes, self.kernel.streams
            )
            self.attack.start(self.kernel, self.clients.send, payload)
        env.process(self._drain())
        env.process(self._sample())
        env.process(self._mark("from"))
        env.process(self._mark("to"))
        show = progress if progress is not None else True
        steps = 200
        with tqdm(
            total=round(self.horizon_s),
            unit="sim s",
            desc=self.scenario.name,
            disable=not show,
            delay=PROGRESS_AFTER_S if progress is None else 0.0,
            leave=False,
        ) as bar:
            done = 0.0
            for i in range(1, steps + 1):
                until = self.horizon_s * i / steps
                env.run(until=until)
                bar.update(round(until) - round(done))
                done = until
        wall_s = time.perf_counter() - started
        return self._result(wall_s, release)

    # ------------------------------------------------------------ results

    def _result(self, wall_s: float, release: bool = False) -> Result:
        from sim.model.readout import build_result

        return build_result(self, wall_s, release)


#: what :meth:`Model.release` takes apart
_RELEASED = ("server", "clients", "kernel", "faults", "traffic")


def simulate(
    scenario: Scenario,
    seed: int | None = None,
    progress: bool | None = None,
    trace: bool = False,
) -> Result:
    """Run ``scenario`` once with ``seed`` (default: ``scenario.run.seed``); with
    ``trace``, ``meta["trace"]`` holds the digest of the event trace."""
    model = Model(scenario, scenario.run.seed if seed is None else seed, trace=trace)
    return model.run(progress=progress, release=True)


__all__ = ["Model", "simulate"]
