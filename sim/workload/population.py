"""Users, their conversations and their online/offline sessions, as arrays.

Idle users are rows in arrays, never SimPy processes: a million users cost
about a hundred bytes each. Conversations are stored in compressed sparse rows
both ways: ``conv_members[conv_ptr[c]:conv_ptr[c+1]]`` are the members of
conversation ``c`` and ``user_convs[user_ptr[u]:user_ptr[u+1]]`` the
conversations of user ``u``. A *slot* is a position in ``user_convs``: one
(user, conversation) membership, where the client keeps its cursor.

The contact graph follows Chung-Lu: each user draws a contact count from a
heavy-tailed distribution and picks conversation partners with probability
proportional to those counts, which gives the power-law degree distribution
reported for instant messaging (Leskovec & Horvitz, WWW 2008).
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Callable, Generator

import numpy as np

from sim.core.distributions import Exponential, LogNormal, exponential, lognormal
from sim.core.kernel import Kernel, Streams
from sim.scenario.workload import SessionShape, Workload


class Conversations:
    """The conversation graph, both directions, with membership slots."""

    def __init__(
        self,
        conv_ptr: np.ndarray,
        conv_members: np.ndarray,
        users: int,
        groups_from: int,
    ) -> None:
        self.conv_ptr = conv_ptr
        self.conv_members = conv_members
        self.count = len(conv_ptr) - 1
        #: conversations with index >= groups_from are groups (3+ members)
        self.groups_from = groups_from
        conv_of_entry = np.repeat(np.arange(self.count, dtype=np.int32), np.diff(conv_ptr))
        order = np.argsort(conv_members, kind="stable")
        self.user_convs = conv_of_entry[order].astype(np.int32)
        counts = np.bincount(conv_members, minlength=users)
        self.user_ptr = np.zeros(users + 1, dtype=np.int64)
        np.cumsum(counts, out=self.user_ptr[1:])
        #: slot (position in user_convs) of each entry of conv_members
        self.member_slot = np.empty(len(conv_members), dtype=np.int32)
        self.member_slot[order] = np.arange(len(conv_members), dtype=np.int32)
        # the same columns as ``array``s: element access from Python is several
        # times faster than numpy scalar indexing, at the same 4 or 8 bytes each
        self.slot_conv = array("i", self.user_convs.tobytes())
        self.user_first_slot = array("q", self.user_ptr.tobytes())
        self._members = array("i", self.conv_members.astype(np.int32).tobytes())
        self._slots = array("i", self.member_slot.tobytes())
        # the numpy names become views of the arrays: one copy of each column in memory
        self.user_convs = np.frombuffer(self.slot_conv, dtype=np.int32)
        self.user_ptr = np.frombuffer(self.user_first_slot, dtype=np.int64)
        self.conv_members = np.frombuffer(self._members, dtype=np.int32)
        self.member_slot = np.frombuffer(self._slots, dtype=np.int32)
        self._ptr = array("q", np.asarray(conv_ptr, dtype=np.int64).tobytes())
        self.conv_ptr = np.frombuffer(self._ptr, dtype=np.int64)
        self._groups: dict[int, tuple[list[int], list[int]]] = {}

    def members_and_slots(self, conv: int) -> tuple[list[int], list[int]]:
        """Members of ``conv`` and their slots (groups' lists are cached once used)."""
        if conv < self.groups_from:  # a 1:1 conversation: entries 2c and 2c + 1
            at = 2 * conv
            return self._members[at : at + 2].tolist(), self._slots[at : at + 2].tolist()
        cached = self._groups.get(conv)
        if cached is None:
            lo, hi = self.conv_ptr[conv], self.conv_ptr[conv + 1]
            cached = (self.conv_members[lo:hi].tolist(), self.member_slot[lo:hi].tolist())
            self._groups[conv] = cached
        return cached

    def size(self, conv: int) -> int:
        """Members of ``conv``."""
        ptr = self._ptr
        return ptr[conv + 1] - ptr[conv]

    def slots_of(self, user: int) -> range:
        first = self.user_first_slot
        return range(first[user], first[user + 1])

    def sizes(self) -> np.ndarray:
        return np.diff(self.conv_ptr)


def build_conversations(workload: Workload, rng: np.random.Generator) -> Conversations:
    """Draw the 1:1 contact graph and the groups (Chung-Lu with heavy-tailed weights)."""
    n = workload.users
    spec = workload.conversations
    weights = spec.contacts.draw(rng, n)
    weights = np.maximum(weights, 0.0)
    total = float(weights.sum())
    if total <= 0:
        raise ValueError("workload.conversations.contacts must have a positive mean")
    cdf = np.cumsum(weights) / total
    cdf[-1] = 1.0
    pairs_wanted = max(1, round(total / 2))

    def pick(count: int) -> np.ndarray:
        # searching sorted needles is cache-friendly: several times faster at a million users
        u = rng.random(count)
        order = np.argsort(u)
        found = np.empty(count, dtype=np.int64)
        found[order] = np.searchsorted(cdf, u[order], side="right")
        return np.minimum(found, n - 1)

    a = pick(pairs_wanted)
    b = pick(pairs_wanted)
    # everyone who uses a chat app has at least one conversation: users the draw
    # left without a partner get one, picked by weight like every other partner
    has_partner = np.zeros(n, dtype=bool)
    has_partner[a] = True
    has_partner[b] = True
    isolated = np.flatnonzero(~has_partner)
    if len(isolated):
        a = np.concatenate([a, isolated])
        b = np.concatenate([b, pick(len(isolated))])
        clash = a == b
        while clash.any():
            b[clash] = pick(int(clash.sum()))
            clash = a == b
    keep = a != b
    lo = np.minimum(a[keep], b[keep]).astype(np.int64)
    hi = np.maximum(a[keep], b[keep]).astype(np.int64)
    keys = np.sort(lo * n + hi)
    unique = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
    pair_lo = (unique // n).astype(np.int32)
    pair_hi = (unique % n).astype(np.int32)
    # shuffle so that conversation ids carry no order of users
    perm = rng.permutation(len(unique))
    pair_lo, pair_hi = pair_lo[perm], pair_hi[perm]
    ones = len(pair_lo)

    f = spec.group_fraction
    n_groups = round(ones * f / (1 - f)) if f > 0 else 0
    sizes = np.clip(spec.group_size.draw(rng, n_groups).astype(np.int64), 3, n)
    group_members: list[np.ndarray] = []
    # members are drawn by weight without replacement: draw with replacement in one
    # vectorised call and keep each group's first distinct draws
    wanted = sizes * 2 + 4
    candidates = pick(int(wanted.sum())).tolist() if n_groups else []
    start = 0
    for size, count in zip(sizes.tolist(), wanted.tolist(), strict=True):
        distinct = list(dict.fromkeys(candidates[start : start + count]))
        start += count
        while len(distinct) < size:
            distinct = list(dict.fromkeys(distinct + pick(size).tolist()))
        group_members.append(np.asarray(distinct[:size], dtype=np.int32))

    ptr = np.empty(ones + n_groups + 1, dtype=np.int64)
    ptr[0] = 0
    ptr[1 : ones + 1] = 2 * np.arange(1, ones + 1)
    if n_groups:
        ptr[ones + 1 :] = 2 * ones + np.cumsum(sizes)
    members = np.empty(int(ptr[-1]), dtype=np.int32)
    members[0 : 2 * ones : 2] = pair_lo
    members[1 : 2 * ones : 2] = pair_hi
    if n_groups:
        members[2 * ones :] = np.concatenate(group_members)
    return Conversations(ptr, members, n, ones)


class OnlineSet:
    """Who is online: a flag per user and the online users as one dense array.

    Reads and writes go through ``online[user]`` as on a bytearray of flags;
    ``members`` holds the online users (in no meaningful order, each once),
    so that picking a uniformly random online user is one index. Putting a
    user online appends it; taking one offline moves the last member into
    its place. Eight bytes per user on top of the flag.

    ``bound`` and ``on_exceed`` let a sampler keep an upper bound on how many
    are online: ``on_exceed()`` is called when a user comes online beyond it.
    """

    __slots__ = ("bound", "flags", "members", "on_exceed", "pos")

    def __init__(self, flags: bytearray) -> None:
        self.flags = flags
        online = np.flatnonzero(np.frombuffer(flags, dtype=np.uint8)).astype(np.int32)
        self.members = array("i", online.tobytes())
        pos = np.full(len(flags), -1, dtype=np.int32)
        pos[online] = np.arange(len(online), dtype=np.int32)
        self.pos = array("i", pos.tobytes())
        self.bound = len(flags)
        self.on_exceed: Callable[[], None] | None = None

    def __getitem__(self, user: int) -> int:
        return self.flags[user]

    def __setitem__(self, user: int, value: int) -> None:
        flags = self.flags
        if value:
            if not flags[user]:
                flags[user] = 1
                members = self.members
                self.pos[user] = len(members)
                members.append(user)
                if len(members) > self.bound and self.on_exceed is not None:
                    self.on_exceed()
        elif flags[user]:
            flags[user] = 0
            pos = self.pos
            i = pos[user]
            last = self.members.pop()
            if last != user:
                self.members[i] = last
                pos[last] = i
            pos[user] = -1


class Sessions:
    """Online/offline alternation of every user, driven by scheduled calls.

    Each user has one pending toggle time, kept in a timing wheel of one-second
    buckets (4 bytes per user); :meth:`toggles` walks the wheel in time order.
    Toggles at or after ``until_s`` are not scheduled: the run's drain brings
    everyone online then.
    """

    BUCKET_S = 1.0

    def __init__(self, workload: Workload, streams: Streams, until_s: float) -> None:
        spec = workload.sessions
        n = workload.users
        self.users = n
        self.until_s = until_s
        rng = streams.generator("workload.sessions")
        self._rng = rng
        self.always_online = spec.mean_offline_s == 0
        self.next_toggle_s = np.full(n, np.inf)
        if spec.shape is SessionShape.EXPONENTIAL:
            self._on_dist: Exponential | LogNormal = exponential(spec.mean_online_s)
            self._off_dist: Exponential | LogNormal | None = (
                None if self.always_online else exponential(spec.mean_offline_s)
            )
        else:
            self._on_dist = lognormal(spec.mean_online_s, spec.cv)
            self._off_dist = None if self.always_online else lognormal(spec.mean_offline_s, spec.cv)
        self._on_sample = self._on_dist.sampler(rng)
        self._off_sample = self._off_dist.sampler(rng) if self._off_dist else None
        self._buckets: dict[int, array[int]] = {}
        #: who is online now (set by the churn; the drain and attacks set it too)
        self.online: OnlineSet
        if self.always_online:
            self.online = OnlineSet(bytearray(b"\x01" * n))
            return
        p_online = spec.mean_online_s / (spec.mean_online_s + spec.mean_offline_s)
        is_online = rng.random(n) < p_online
        self.online = OnlineSet(bytearray(is_online.astype(np.uint8).tobytes()))
        residual = np.where(
            is_online,
            self._residual(self._on_dist, rng, n),
            self._residual(self._off_dist, rng, n),
        )
        self.next_toggle_s[:] = residual
        due = np.nonzero(residual < until_s)[0]
        bucket_of = (residual[due] / self.BUCKET_S).astype(np.int64)
        order = np.argsort(bucket_of, kind="stable")
        due, bucket_of = due[order], bucket_of[order]
        bounds = np.flatnonzero(np.diff(bucket_of)) + 1
        starts = np.concatenate([[0], bounds])
        for start, chunk in zip(starts.tolist(), np.split(due, bounds), strict=True):
            if len(chunk):
                self._buckets[int(bucket_of[start])] = array("i", chunk.astype(np.int32).tobytes())

    @staticmethod
    def _residual(
        dist: Exponential | LogNormal | None, rng: np.random.Generator, n: int
    ) -> np.ndarray:
        """Time to the first toggle of a user observed at a random instant.

        For a renewal process the residual life of the interval covering a random
        instant is U * L, L drawn length-biased; length-biasing a lognormal adds
        sigma^2 to mu, and an exponential's residual is the exponential itself.
        """
        if dist is None:
            return np.full(n, np.inf)
        if isinstance(dist, Exponential):
            return dist.draw(rng, n)
        biased = rng.lognormal(dist.mu + dist.sigma**2, dist.sigma, n)
        return rng.random(n) * biased

    @property
    def online_count(self) -> int:
        return len(self.online.members)

    def start(self, kernel: Kernel, on_toggle: Callable[[int, bool], None]) -> None:
        """Run the churn: ``on_toggle(user, now_online)`` is called at each toggle.

        :meth:`toggles` is a generator of wake-up times driven by scheduled calls
        (one per instant with toggles), not a SimPy process.
        """
        at = kernel.at
        toggles = self.toggles(kernel, on_toggle)

        def wake(_: None) -> None:
            for t in toggles:
                if t > kernel.now:
                    at(t, wake, None)
                    return

        wake(None)

    def toggles(
        self, clock: Kernel, on_toggle: Callable[[int, bool], None]
    ) -> Generator[float, None, None]:
        """The churn: calls ``on_toggle(user, now_online)`` at each toggle; yields the
        time of each toggle before making it (the caller waits until then)."""
        buckets = self._buckets
        width = self.BUCKET_S
        until_s = self.until_s
        online = self.online
        next_toggle = self.next_toggle_s
        on_sample = self._on_sample
        off_sample = self._off_sample
        assert off_sample is not None or not buckets
        last_bucket = int(until_s / width) + 1
        for b in range(last_bucket + 1):
            users = buckets.pop(b, None)
            if users is None:
                continue
            times = next_toggle[np.frombuffer(users, dtype=np.int32)].tolist()
            heap = list(zip(times, users, strict=True))
            heapq.heapify(heap)
            while heap:
                t, user = heapq.heappop(heap)
                if t > clock.now:
                    yield t
                going_online = not online[user]
                online[user] = 1 if going_online else 0
                duration = on_sample() if going_online else off_sample()  # type: ignore[misc]
                nxt = t + duration
                next_toggle[user] = nxt
                if nxt < until_s:
                    nb = int(nxt / width)
                    if nb == b:
                        heapq.heappush(heap, (nxt, user))
                    else:
                        bucket = buckets.get(nb)
                        if bucket is None:
                            buckets[nb] = array("i", (user,))
                        else:
                            bucket.append(user)
                on_toggle(user, going_online)
