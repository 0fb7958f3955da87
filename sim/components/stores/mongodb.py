"""A MongoDB replica set as the message store: one primary, oplog replication, elections.

A primary crash leaves the set without a primary until the secondaries time
out and elect one; ``w:1`` writes the old primary had acknowledged but no
secondary had replicated are rolled back and reported through
:attr:`~sim.components.durable.Cluster.lost`. The hops between the message
service and the store are the service's business.

Random numbers come from the named streams ``store.write`` and ``store.read``
(service times) and ``store.election`` (election duration).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sim.components.durable import Done, StoreModel
from sim.core.distributions import BlockDraws, Sampler
from sim.core.kernel import Kernel
from sim.core.metrics import Message
from sim.scenario.store import MongoDbConfig, WriteConcern

_WAITING = 0
_INFLIGHT = 1
_DONE = 2


class _MReq:
    """A driver operation: waiting for a primary, at the primary, or done."""

    __slots__ = ("arg", "error", "ok", "retried", "rid", "selection", "state", "write")

    def __init__(
        self, arg: Any, ok: Callable[[Any], None], error: Callable[[Any], None], write: bool
    ) -> None:
        self.arg = arg
        self.ok = ok
        self.error = error
        self.write = write
        self.retried = False
        self.state = _WAITING
        self.rid = -1
        self.selection = 0


class MongoDbStore(StoreModel):
    """A MongoDB replica set: one primary, secondaries applying its oplog, elections.

    * Writes and reads go to the primary (readPreference ``primary``). A write
      takes ``write_s`` on the primary and enters its oplog. Each secondary
      pulls the oplog (the oplog fetcher's awaitData getMore): a getMore
      waiting at the primary is answered at once with the entries it lacks; the
      batch travels a hop, enters the secondary's oplog, is applied there
      (``write_s`` per entry) and the next getMore travels a hop back. Entries
      written while a getMore is on its way wait at the primary: that round
      trip is the window of ``w1`` writes a crash rolls back. Applied
      positions go back to the primary (a hop). ``w1``: ``ok`` when the
      primary wrote the entry; ``majority``: when a majority of members (the
      primary included) applied it.
    * Primary crash: no primary until the secondaries notice
      (``election_timeout_s``) and elect one (``election_s``, a few hundred
      ms). Operations meanwhile wait for a primary (server selection) and
      fail after ``server_selection_timeout_s`` (30 s) without one; the
      operations in progress at the crash are retried once (retryable writes
      and reads), then fail.
    * The new primary is the live member with the most recent oplog entry.
      The entries after it are rolled back: the acknowledged ones (``w1``
      writes) go to :attr:`lost` and are counted. With ``majority`` nothing
      acknowledged is rolled back.
    * A primary that cannot see a majority steps down after
      ``election_timeout_s``; an election needs a majority of members up.
    * A member that recovers rejoins as a secondary, caught up at once when
      there is a primary (its initial sync or catch-up is not modelled);
      without a primary it keeps its oplog and may be elected.
    """

    def __init__(
        self,
        spec: MongoDbConfig,
        kernel: Kernel,
        hop: Callable[[], float],
        measure_from_s: float,
        *,
        election_s: tuple[float, float] = (0.2, 0.5),
        server_selection_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(kernel, "store", spec.nodes, spec.workers, measure_from_s, hop)
        streams = kernel.streams
        self.write_s: Sampler = spec.write_s.sampler(streams.generator("store.write"))
        self.read_s: Sampler = spec.read_s.sampler(streams.generator("store.read"))
        election_rng = streams.generator("store.election")
        low, high = election_s
        self._election_s: Sampler = BlockDraws(lambda k: election_rng.uniform(low, high, k))
        n = spec.nodes
        self.majority = n // 2 + 1
        self.write_concern = spec.write_concern
        self.w1 = spec.write_concern is WriteConcern.W1
        self.election_timeout_s = spec.election_timeout_s
        self.server_selection_timeout_s = server_selection_timeout_s
        self.primary: int | None = 0
        #: the election term: replication and positions of an older term are ignored
        self.term = 1
        #: bumped whenever the primary changes or goes: its operations in progress are void
        self.epoch = 1
        #: the primary's oplog, and whether each entry was acknowledged to the client
        self.oplog: list[Message] = []
        self.acked = bytearray()
        #: oplog entries each member holds (fetched into its oplog: what elections compare)
        self.received = [0] * n
        #: entries the primary has shipped to each secondary; a getMore waiting at the primary
        self._sent = [0] * n
        self._parked = [i != 0 for i in range(n)]
        #: each member's applied oplog prefix, and entries applied beyond it (out of order)
        self.pos = [0] * n
        self._beyond: list[set[int]] = [set() for _ in range(n)]
        #: members' positions as the primary knows them (for the majority commit point)
        self.seen = [0] * n
        self.commit = 0
        self._majority_wait: deque[tuple[int, _MReq]] = deque()
        self._inflight: dict[int, _MReq] = {}
        self._waiting: dict[int, _MReq] = {}
        self._next_rid = 0
        self._election_gen = 0
        self._election_pending = False
        self.elections = 0
        self.stepdowns = 0
        self.rolled_back = 0
        self.rolled_back_unacked = 0
        self.retried = 0
        self.selection_timeouts = 0

    # ------------------------------------------------------------ requests

    def write(self, msg: Message, ok: Done, error: Done) -> None:
        self._select(_MReq(msg, ok, error, True))

    def read(
        self, key: int, ok: Callable[[Any], None], error: Callable[[Any], None], arg: Any
    ) -> None:
        self._select(_MReq(arg, ok, error, False))

    def _rid(self, req: _MReq) -> int:
        rid = self._next_rid
        self._next_rid = rid + 1
        req.rid = rid
        return rid

    def _select(self, req: _MReq) -> None:
        """Server selection: the primary, or wait for one (at most the selection timeout)."""
        if self.primary is not None:
            self._dispatch(req)
            return
        req.state = _WAITING
        self._waiting[self._rid(req)] = req
        req.selection += 1
        self.after(self.server_selection_timeout_s, self._selection_expired, (req, req.selection))

    def _selection_expired(self, ctx: tuple[_MReq, int]) -> None:
        req, selection = ctx
        if req.state != _WAITING or req.selection != selection:
            return
        self._waiting.pop(req.rid, None)
        req.state = _DONE
        self.selection_timeouts += 1
        req.error(req.arg)

    def _dispatch(self, req: _MReq) -> None:
        primary = self.primary
        assert primary is not None
        req.state = _INFLIGHT
        rid = self._rid(req)
        self._inflight[rid] = req
        cost = self.write_s() if req.write else self.read_s()
        self.stations[primary].submit(cost, self._at_primary, (req, self.epoch, rid))

    def _finish(self, req: _MReq) -> None:
        self._inflight.pop(req.rid, None)
        req.state = _DONE
        req.ok(req.arg)

    def _at_primary(self, job: tuple[_MReq, int, int]) -> None:
        req, epoch, rid = job
        if epoch != self.epoch or req.state != _INFLIGHT or req.rid != rid:
            return
        if not req.write:
            self._finish(req)
            return
        idx = len(self.oplog)
        self.oplog.append(req.arg)
        self.acked.append(0)
        parked = self._parked
        for s in range(len(parked)):
            if parked[s]:
                self._ship(s)
        if self.w1:
            self.acked[idx] = 1
            self._finish(req)
        else:
            self._majority_wait.append((idx, req))
            self._advance_commit()

    # ------------------------------------------------------------ replication

    def _ship(self, s: int) -> None:
        """Answer secondary ``s``'s waiting getMore with the oplog entries it lacks."""
        start = self._sent[s]
        end = len(self.oplog)
        self._sent[s] = end
        self._parked[s] = False
        self.after(self.hop(), self._batch, (s, self.term, start, end))

    def _batch(self, job: tuple[int, int, int, int]) -> None:
        """A batch reaches secondary ``s``: into its oplog, to be applied; next getMore."""
        s, term, start, end = job
        station = self.stations[s]
        if term != self.term or not station.up:
            return
        if end > self.received[s]:
            self.received[s] = end
        for idx in range(start, end):
            station.submit(self.write_s(), self._applied, (s, term, idx))
        self.after(self.hop(), self._get_more, (s, term))

    def _get_more(self, job: tuple[int, int]) -> None:
        s, term = job
        if term != self.term or self.primary is None or not self.stations[s].up:
            return  # the fetcher restarts with the next primary
        if self._sent[s] < len(self.oplog):
            self._ship(s)
        else:
            self._parked[s] = True  # awaitData: answered by the next write

    def _applied(self, job: tuple[int, int, int]) -> None:
        s, term, idx = job
        if term != self.term or idx < self.pos[s]:
            return
        beyond = self._beyond[s]
        beyond.add(idx)
        p = self.pos[s]
        while p in beyond:
            beyond.remove(p)
            p += 1
        if p != self.pos[s]:
            self.pos[s] = p
            if self.primary is not None:
                self.after(self.hop(), self._position, (s, term, p))

    def _position(self, job: tuple[int, int, int]) -> None:
        s, term, p = job
        if term != self.term or self.primary is None:
            return
        if p > self.seen[s]:
            self.seen[s] = p
            self._advance_commit()

    def _advance_commit(self) -> None:
        primary = self.primary
        positions = sorted(
            (len(self.oplog) if i == primary else self.seen[i] for i in range(len(self.stations))),
            reverse=True,
        )
        point = positions[self.majority - 1]
        if point <= self.commit:
            return
        self.commit = point
        waiting = self._majority_wait
        while waiting and waiting[0][0] < point:
            idx, req = waiting.popleft()
            if req.state == _INFLIGHT:
                self.acked[idx] = 1
                self._finish(req)

    # ------------------------------------------------------------ faults

    def _live(self) -> list[int]:
        return [i for i, st in enumerate(self.stations) if st.up]

    def _lose_primary(self) -> None:
        """The primary is gone (crash or step-down): operations in progress retry once."""
        old = self.primary
        assert old is not None
        self.primary = None
        self.epoch += 1
        self.pos[old] = self.received[old] = len(self.oplog)
        self._beyond[old].clear()
        self._majority_wait.clear()
        pending = list(self._inflight.values())
        self._inflight.clear()
        for req in pending:
            if req.retried:
                req.state = _DONE
                req.error(req.arg)
            else:
                req.retried = True
                self.retried += 1
                self._select(req)

    def _schedule_election(self, delay_s: float) -> None:
        self._election_gen += 1
        self._election_pending = True
        self.after(delay_s, self._elect, self._election_gen)

    def on_crash(self, node: int) -> None:
        self._parked[node] = False
        if node == self.primary:
            self.event(f"mongodb primary {node} down")
            self._lose_primary()
            self._schedule_election(self.election_timeout_s + self._election_s())
        elif self.primary is not None and len(self._live()) < self.majority:
            self.after(self.election_timeout_s, self._check_majority, self.epoch)

    def _check_majority(self, epoch: int) -> None:
        if epoch != self.epoch or self.primary is None:
            return
        if len(self._live()) < self.majority:
            self.stepdowns += 1
            self.event(f"mongodb primary {self.primary} steps down: no majority")
            self._lose_primary()

    def on_recover(self, node: int) -> None:
        if self.primary is not None:
            # rejoins as a secondary; its catch-up (or initial sync) is not modelled: instant
            end = len(self.oplog)
            self.pos[node] = self.received[node] = self._sent[node] = self.seen[node] = end
            self._beyond[node].clear()
            self._parked[node] = True
            self._advance_commit()
        else:
            # keeps the oplog it had, and may be elected
            self.pos[node] = self.received[node] = min(self.received[node], len(self.oplog))
            self._beyond[node].clear()
            if not self._election_pending and len(self._live()) >= self.majority:
                self._schedule_election(self._election_s())
        self.event(f"mongodb member {node} back")

    def _elect(self, gen: int) -> None:
        if gen != self._election_gen or self.primary is not None:
            return
        self._election_pending = False
        live = self._live()
        if len(live) < self.majority:
            self.event("mongodb: no majority up, no election")
            return
        received = self.received
        winner = max(live, key=lambda i: (received[i], -i))
        cut = received[winner]
        lost = [m for m, a in zip(self.oplog[cut:], self.acked[cut:], strict=True) if a]
        unacked = len(self.oplog) - cut - len(lost)
        del self.oplog[cut:]
        del self.acked[cut:]
        up = set(live)
        for i in range(len(received)):
            # members drain what they fetched (a new primary does before taking writes)
            received[i] = min(received[i], cut)
            self.pos[i] = self._sent[i] = received[i]
            self._beyond[i].clear()
            self._parked[i] = i != winner and i in up
        self.term += 1
        self.epoch += 1
        self.primary = winner
        self.seen = list(self.pos)
        self.commit = 0
        self.elections += 1
        self.event(f"mongodb election: member {winner} primary (term {self.term})")
        if lost or unacked:
            self.rolled_back += len(lost)
            self.rolled_back_unacked += unacked
            self.event(f"mongodb rollback: {len(lost)} acknowledged, {unacked} other writes")
        self._advance_commit()
        waiting = list(self._waiting.values())
        self._waiting.clear()
        for req in waiting:
            self._dispatch(req)
        if lost:
            self.lost(lost)

    def counters(self) -> dict[str, float]:
        return {
            "store_elections": float(self.elections),
            "store_stepdowns": float(self.stepdowns),
            "store_rolled_back": float(self.rolled_back),
            "store_retried": float(self.retried),
            "store_selection_timeouts": float(self.selection_timeouts),
        }


__all__ = ["MongoDbStore"]
