"""Columnar recorders: what components emit during a run, kept in compact arrays.

Components call the recorder's methods; nothing is patched in. Per-message
state lives in :class:`Message` objects (with ``__slots__``); per-display
records and per-interval counters in ``array`` columns, turned into pandas
frames once, at the end of the run.
"""

from __future__ import annotations

from array import array

PATH_ONLINE = 0
PATH_SYNC = 1
PATH_NAMES = ("online", "sync")


class Message:
    """One message a user sent: identity, timing and outcome as the sender sees it."""

    __slots__ = (
        "ack_s",
        "acked",
        "attempts",
        "conv",
        "down_bytes",
        "durable",
        "durable_s",
        "failed",
        "failed_s",
        "gone",
        "msg_id",
        "payload_bytes",
        "published",
        "send_s",
        "sender",
        "seq",
        "slot",
        "up_bytes",
        "waiters",
        "write_no",
        "writing",
    )

    def __init__(
        self,
        msg_id: int,
        conv: int,
        slot: int,
        sender: int,
        send_s: float,
        payload_bytes: int,
        up_bytes: int,
        down_bytes: int,
    ) -> None:
        self.msg_id = msg_id
        self.conv = conv
        self.slot = slot
        self.sender = sender
        self.send_s = send_s
        #: the message frame on the client link, framing included, each way
        self.up_bytes = up_bytes
        self.down_bytes = down_bytes
        self.payload_bytes = payload_bytes
        self.seq = 0
        self.attempts = 0
        self.acked = False
        self.ack_s = -1.0
        self.failed = False
        self.failed_s = -1.0
        #: in the store with a seq (``durable_s``: since when); ``gone``: lost again after that
        self.durable = False
        self.durable_s = -1.0
        self.gone = False
        #: acknowledged by the broker (``ack_after: broker``)
        self.published = False
        #: a write or publish is in progress (``write_no`` tells them apart for timeouts)
        self.writing = False
        self.write_no = 0
        self.waiters: list[tuple[int, int, int]] | None = None


class Recorder:
    """Everything measured during one run."""

    def __init__(
        self, interval_s: float, horizon_s: float, measure_from_s: float, measure_to_s: float
    ):
        self.interval_s = interval_s
        self._inv_interval = 1.0 / interval_s
        self.bins = int(horizon_s / interval_s) + 2
        self.measure_from_s = measure_from_s
        self.measure_to_s = measure_to_s
        self.messages: list[Message] = []
        # one row per display of a message to a recipient
        self.d_msg = array("i")  # message ids are 32-bit in the deliveries frame too
        self.d_recipient = array("i")
        self.d_time = array("d")
        self.d_ref = array("d")
        self.d_path = array("b")
        # per-interval counters
        self.bytes_bins = [0.0] * self.bins
        self.request_bins = [0] * self.bins
        self.accepted_bins = [0] * self.bins
        self.error_bins = [0] * self.bins
        self.retry_bins = [0] * self.bins
        self.connect_bins = [0] * self.bins
        self.online_bins = [0] * self.bins
        # run-wide counters
        self.bytes_measured = 0.0
        self.requests_measured = 0
        self.redelivered = 0
        self.empty_polls = 0
        self.rate_limited = 0
        self.push_notifications = 0
        self.retries = 0
        self.lost_in_flight = 0
        self.write_errors = 0
        self.write_timeouts = 0
        self.broker_redeliveries = 0
        self.store_lost = 0
        self.inbox_expired = 0
        self.sync_errors = 0
        self.sync_timeouts = 0
        self.connect_failures = 0
        self.connect_attempts = 0
        self.memory_rewrites = 0
        self.connects_shed = 0
        self.blocked_sends = 0
        self.token_refreshes = 0
        self.connections_lost = 0

    def _bin(self, t: float) -> int:
        b = int(t * self._inv_interval)
        return b if b < self.bins else self.bins - 1

    def wire(self, now: float, nbytes: float, request: bool = False) -> None:
        """Bytes crossing the client link (either direction); ``request`` counts a request."""
        b = int(now * self._inv_interval)
        self.bytes_bins[b] += nbytes
        if request:
            self.request_bins[b] += 1
        if self.measure_from_s <= now < self.measure_to_s:
            self.bytes_measured += nbytes
            if request:
                self.requests_measured += 1

    def display(self, msg: Message, recipient: int, now: float, ref_s: float, path: int) -> None:
        self.d_msg.append(msg.msg_id)
        self.d_recipient.append(recipient)
        self.d_time.append(now)
        self.d_ref.append(ref_s)
        self.d_path.append(path)

    def accepted(self, now: float) -> None:
        self.accepted_bins[self._bin(now)] += 1

    def error(self, now: float) -> None:
        self.error_bins[self._bin(now)] += 1

    def connect(self, now: float) -> None:
        """A client starts a connection attempt."""
        self.connect_attempts += 1
        self.connect_bins[self._bin(now)] += 1

    def retry(self, now: float) -> None:
        self.retries += 1
        self.retry_bins[self._bin(now)] += 1
