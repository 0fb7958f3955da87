"""Presence: which gateway holds each user's connection, and for which client epoch.

Two arrays indexed by user (4 B each per user), shared by the gateway (which
writes them as sessions open and close) and by the message service and the
delivery (which read them to route acks and pushes). A frame meant for an older
connection of the user (another epoch) is stale.
"""

from __future__ import annotations

from array import array


class Presence:
    """Per user: the gateway index holding its session (-1: none) and the session's epoch."""

    __slots__ = ("epoch", "gw")

    def __init__(self, users: int) -> None:
        self.gw = array("i", [-1]) * users
        self.epoch = array("i", [0]) * users

    def connected(self, user: int, epoch: int) -> bool:
        """Whether ``user`` holds a session of client epoch ``epoch`` now."""
        return self.gw[user] >= 0 and self.epoch[user] == epoch


__all__ = ["Presence"]
