"""Where a key lives and how many replicas must answer: helpers shared by the stores.

Partitioned and replicated stores place a conversation (or a user's inbox) by a
stable hash of its key, the way a partitioner's token does, and count the
replicas a consistency level needs.
"""

from __future__ import annotations

from sim.scenario.store import Consistency

_MASK64 = (1 << 64) - 1


def stable_hash(key: int) -> int:
    """A 64-bit hash of an integer key, the same in every process (SplitMix64's finaliser).

    Python's ``hash()`` of an int is the int itself; this spreads consecutive ids
    over a ring or a set of partitions the way a partitioner's token does.
    """
    z = (key + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def consistency_count(level: Consistency, replication_factor: int) -> int:
    """Replicas that must answer at ``level``: ONE 1, QUORUM RF//2+1, ALL RF."""
    if level is Consistency.ONE:
        return 1
    if level is Consistency.QUORUM:
        return replication_factor // 2 + 1
    return replication_factor


__all__ = ["consistency_count", "stable_hash"]
