"""Where offline users' messages wait: the store, an SQS queue per user, or a Kafka topic.

The message store always holds every message (it is the conversation history);
the inbox kind decides what a *reconnecting* user's sync costs and how long a
waiting message lives:

* ``store``: the sync is one query of the store (its read latency); messages
  never expire.
* ``sqs``: fan-out sends one SendMessage per offline recipient to that user's
  queue; on reconnect the client's sync drains it with ReceiveMessage calls of at
  most 10 messages each, one after another (each an API call's latency), and
  deletes what it got. A message older than the retention is gone.
* ``kafka``: fan-out appends one record per offline recipient to the inbox
  topic (partitioned by user); the sync is one fetch from the user's committed
  offset, up to ``max.poll.records`` (500) records per fetch. Records older than
  the retention are deleted by the log cleaner.

Gap-filling syncs of connected users and polls read the store, as before.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.core.kernel import Kernel
from sim.scenario.architecture import InboxKind
from sim.scenario.broker import APPEND_S, SQS_API_S, BrokerClusterConfig, SqsQueueConfig
from sim.scenario.schema import Scenario

#: ReceiveMessage returns at most 10 messages (Amazon SQS API Reference)
SQS_RECEIVE_BATCH = 10
#: Kafka consumer ``max.poll.records`` default (Kafka consumer configuration)
KAFKA_FETCH_RECORDS = 500


class Inbox:
    """The read cost of a reconnect sync and the write count of offline fan-out."""

    def __init__(self, scenario: Scenario, kernel: Kernel, hop: Callable[[], float]) -> None:
        arch = scenario.architecture
        self.kind = arch.offline.inbox
        streams = kernel.streams
        self.hop = hop
        # an inbox's calls cost what the scenario's broker of that family says, if it has one
        broker = arch.broker
        api_s = broker.api_s if isinstance(broker, SqsQueueConfig) else SQS_API_S
        fetch_s = broker.append_s if isinstance(broker, BrokerClusterConfig) else APPEND_S
        self.api_s = api_s.sampler(streams.generator("inbox.api"))
        self.fetch_s = fetch_s.sampler(streams.generator("inbox.fetch"))
        self.puts = 0
        self.reads = 0
        self.calls = 0

    @property
    def separate(self) -> bool:
        """True when reconnect syncs read a queue or topic rather than the store."""
        return self.kind is not InboxKind.STORE

    def put(self) -> None:
        """One offline recipient's copy is written to the inbox."""
        self.puts += 1

    def read_s(self, waiting: int) -> float:
        """Time to read ``waiting`` messages for one reconnecting user."""
        self.reads += 1
        if self.kind is InboxKind.SQS:
            calls = max(1, -(-waiting // SQS_RECEIVE_BATCH))
            self.calls += calls
            return sum(self.api_s() for _ in range(calls))
        calls = max(1, -(-waiting // KAFKA_FETCH_RECORDS))
        self.calls += calls
        return sum(2.0 * self.hop() + self.fetch_s() for _ in range(calls))

    def counters(self) -> dict[str, float]:
        if not self.separate:
            return {}
        prefix = f"inbox_{self.kind.value}"
        return {
            f"{prefix}_puts": float(self.puts),
            f"{prefix}_reads": float(self.reads),
            f"{prefix}_calls": float(self.calls),
        }


__all__ = ["Inbox"]
