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


#: the type of a run-wide count (see :class:`Recorder`)
Count = int


class Recorder:
    """Everything measured during one run.

    Where a new metric goes:

    * a run-wide count of the message path: one annotated line ``name: Count``
      below, with a ``#:`` comment saying what it counts; components add to it
      (``rec.name += 1``); it appears in ``Result.meta["counters"]`` (and in the
      summary when :data:`sim.model.result.SUMMARY_COLUMNS` names it, with the
      readout computing it);
    * a count a component keeps about itself (a broker's redeliveries, a
      breaker's transitions): the component's ``counters()`` method, which
      :meth:`sim.model.server.assembly.Server.counters` merges into the same place;
    * a quantity per sampling interval: a ``*_bins`` column here and its column
      in the timeseries frame (:func:`sim.model.readout.timeseries_frame`).
    """

    #: messages displayed already, dropped by the client's dedup (raw redeliveries)
    redelivered: Count
    #: short or long polls answered with nothing, in the measurement window
    empty_polls: Count
    #: sends refused by the token-bucket rate limiter
    rate_limited: Count
    #: push notifications sent to offline members
    push_notifications: Count
    #: send retries of the clients
    retries: Count
    #: frames for a connection that closed while they travelled
    lost_in_flight: Count
    #: store or broker writes that failed
    write_errors: Count
    #: store or broker writes that timed out in the service
    write_timeouts: Count
    #: records a broker handed to a consumer again
    broker_redeliveries: Count
    #: acknowledged messages a store lost again (rollbacks)
    store_lost: Count
    #: messages deleted unread from an inbox queue after their retention
    inbox_expired: Count
    #: sync requests answered with an error
    sync_errors: Count
    #: sync requests that got no reply in time
    sync_timeouts: Count
    #: connection attempts that failed (refused or timed out)
    connect_failures: Count
    #: connection attempts
    connect_attempts: Count
    #: writes of messages acked in memory, tried again after the store refused them
    memory_rewrites: Count
    #: connection attempts refused by load shedding
    connects_shed: Count
    #: sends refused by the abuse detector
    blocked_sends: Count
    #: access token renewals
    token_refreshes: Count
    #: connections the server side closed (gateway crash, blocked user)
    connections_lost: Count

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
        # the client link in the measurement window
        self.bytes_measured = 0.0
        self.requests_measured = 0
        for name in COUNTS:
            setattr(self, name, 0)

    def counters(self) -> dict[str, float]:
        """Every run-wide count, by name."""
        return {name: float(getattr(self, name)) for name in COUNTS}

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


#: the names of the run-wide counts, in declaration order
COUNTS: tuple[str, ...] = tuple(
    name for name, kind in Recorder.__annotations__.items() if kind == "Count"
)
