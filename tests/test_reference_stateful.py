"""Stateful property tests of the reference implementation (DESIGN section 2).

A Hypothesis ``RuleBasedStateMachine`` drives one server and four clients over
the in-memory network: users connect, disconnect, send, join and leave; the
network delivers any pending frame, drops, duplicates and delays them; server
components crash, restart and lose disks; time advances. Attackers present
forged, expired and wrong-audience tokens. Invariants are checked after every
step, eventual properties after heal-and-settle in ``teardown``.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from strategies import components, server_configs, time_steps_s

from reference_impl.auth import JwtAlgorithm, JwtAuthenticator, JwtIssuer, JwtKeys
from reference_impl.checker import check
from reference_impl.client import Client
from reference_impl.e2e import DecryptStatus, E2ESession
from reference_impl.frames import Deliver, ErrorCode, Frame, Hello, Send, SyncRequest, SyncResponse
from reference_impl.network import Network
from reference_impl.server import Server, ServerConfig
from reference_impl.service import AckAfter

USERS = ["u0", "u1", "u2", "u3"]
GROUP, PAIR = "g", "p"
MOVERS = ["u2", "u3"]  # who joins and leaves the group
BAD_TOKENS = ["forged", "expired", "wrong_audience", "wrong_issuer", "garbage", "alg_none"]


class ReferenceMachine(RuleBasedStateMachine):
    """Real server and clients under arbitrary faults; see the module docstring."""

    client_class: type[Client] = Client

    @initialize(config=server_configs)
    def setup(self, config: ServerConfig) -> None:
        self.config = config
        self.keys = JwtKeys.generate(JwtAlgorithm.HS256, random.Random(0))
        self.issuer = JwtIssuer(self.keys)
        self.server = Server(JwtAuthenticator(self.keys), config)
        clients = {}
        for user in USERS:
            e2e = E2ESession(user, random.Random(f"key-{user}"))
            self.server.register_user(user, e2e.public_key)
            token = self.issuer.issue(user, now_s=0.0, ttl_s=10**6)
            clients[user] = self.client_class(user, token, random.Random(f"rng-{user}"), e2e)
        self.server.create_conversation(GROUP, ["u0", "u1", "u2"])
        self.server.create_conversation(PAIR, ["u0", "u1"])
        self.net = Network(self.server, clients, observer=self._observe)
        self.plaintexts: dict[str, bytes] = {}
        self.violations: list[str] = []
        self.attacker_conns: set[str] = set()
        self.wipes = 0
        self.service_crashed = False
        self.checked_displays = 0
        self.last_seq: dict[tuple[str, str], int] = {}
        self.shown_pairs: set[tuple[str, str]] = set()
        self.counter = 0
        for user in USERS:  # everyone starts online, knowing their conversations
            self.net.connect(user)
        self.net.flush()

    def _observe(self, user: str, conn_id: str, frame: Frame) -> None:
        """Non-members never receive: checked at the moment the server emits."""
        conv_ids = []
        if isinstance(frame, Deliver):
            conv_ids.append(frame.conv_id)
        elif isinstance(frame, SyncResponse):
            conv_ids.extend(m.conv_id for m in frame.messages)
        for conv_id in conv_ids:
            if not self.server.is_member(user, conv_id):
                self.violations.append(f"{user} received {conv_id} while not a member")

    # -- rules --------------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS))
    def connect(self, user: str) -> None:
        self.net.connect(user)

    @rule(user=st.sampled_from(USERS))
    def disconnect(self, user: str) -> None:
        self.net.disconnect(user)

    @rule(
        sends=st.lists(
            st.tuples(st.sampled_from(USERS), st.sampled_from([GROUP, PAIR])),
            min_size=1,
            max_size=4,
        )
    )
    def send(self, sends: list[tuple[str, str]]) -> None:
        for user, conv_id in sends:
            view = self.net.clients[user].views.get(conv_id)
            if view is None or view.info is None:
                continue  # the client does not know the conversation: nothing to encrypt to
            self.counter += 1
            plaintext = f"plaintext-{self.counter}-{user}-secret".encode()
            msg_id = self.net.send(user, conv_id, plaintext)
            self.plaintexts[msg_id] = plaintext

    @rule(indices=st.lists(st.integers(0, 40), min_size=1, max_size=8))
    def deliver(self, indices: list[int]) -> None:
        for index in indices:
            self.net.deliver(index)

    @rule()
    def flush(self) -> None:
        self.net.flush()

    @rule(action=st.sampled_from(["drop", "duplicate", "push_back"]), index=st.integers(0, 40))
    def mangle(self, action: str, index: int) -> None:
        """Drop, duplicate or delay (reorder) one pending frame."""
        getattr(self.net, action)(index)

    @rule(user=st.one_of(st.none(), st.sampled_from(USERS)))
    def partition(self, user: str | None) -> None:
        """Cut one user off, or (``None``) heal every partition."""
        if user is None:
            self.net.heal()
        else:
            self.net.partition(user)

    @rule(action=st.sampled_from(["crash", "restart", "wipe"]), component=components)
    def fault(self, action: str, component: str) -> None:
        """Crash or restart a server component, or wipe a store replica's disk."""
        if action == "crash":
            self.service_crashed |= component == "service"
            self.net.crash(component)
        elif action == "restart":
            self.net.restart(component)
        elif component.startswith("store."):
            self.wipes += 1
            self.server.wipe(int(component.removeprefix("store.")))

    @rule(dt_s=time_steps_s)
    def advance(self, dt_s: float) -> None:
        self.net.advance(dt_s)

    @rule(user=st.sampled_from(MOVERS))
    def join(self, user: str) -> None:
        self.net._from_server(self.server.join(GROUP, user))

    @rule(user=st.sampled_from(MOVERS))
    def leave(self, user: str) -> None:
        self.net._from_server(self.server.leave(GROUP, user))

    @rule(kind=st.sampled_from(BAD_TOKENS))
    def attacker(self, kind: str) -> None:
        """A connection with a bad token claiming to be u0 tries to send and sync."""
        conn_id = f"evil-{len(self.attacker_conns)}"
        self.attacker_conns.add(conn_id)
        self.server.connect(conn_id)
        now_s = self.net.now_s
        token = bad_token(kind, self.keys, now_s)
        replies = self.server.receive(conn_id, Hello(token, b""), now_s)
        replies += self.server.receive(conn_id, Send("evil-msg", GROUP, b"x"), now_s)
        replies += self.server.receive(conn_id, SyncRequest(GROUP, 0, 10), now_s)
        self.server.disconnect(conn_id)
        codes = [getattr(f, "code", None) for _c, f in replies]
        expected = 3 if self.server.gateway_up else 0  # a crashed gateway answers nothing
        assert codes == [ErrorCode.UNAUTHENTICATED] * expected, f"{kind} token was not rejected"

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def displays_are_unique_ordered_and_authentic(self) -> None:
        """No message displayed twice to one recipient; seq strictly increases per
        (recipient, conversation); decrypted text is the sent text, never tampered."""
        shown = self.net.shown if hasattr(self, "net") else []
        for user, d in shown[self.checked_displays :]:
            pair = (d.msg_id, user)
            assert pair not in self.shown_pairs, f"{d.msg_id} displayed twice to {user}"
            self.shown_pairs.add(pair)
            stream = (user, d.conv_id)
            assert d.seq > self.last_seq.get(stream, 0), f"{user} saw {d.conv_id} out of order"
            self.last_seq[stream] = d.seq
            assert d.status in (DecryptStatus.OK, DecryptStatus.MISSING_KEY), d.status
            if d.status is DecryptStatus.OK:
                assert d.plaintext == self.plaintexts[d.msg_id]
        self.checked_displays = len(shown)

    @invariant()
    def non_members_never_receive(self) -> None:
        """The server emitted no message of a conversation to a non-member."""
        assert not getattr(self, "violations", [])

    @invariant()
    def server_never_holds_plaintext(self) -> None:
        """No sent plaintext appears in any payload the server stores or queues."""
        if not hasattr(self, "server"):
            return
        held = self.server.payloads()
        for plaintext in self.plaintexts.values():
            assert not any(plaintext in payload for payload in held)

    @invariant()
    def rejected_tokens_never_reach_the_service(self) -> None:
        """No attacker connection ever appears among the message service's callers."""
        if hasattr(self, "server"):
            assert not self.attacker_conns & self.server.service.callers

    # -- eventual properties ------------------------------------------------------------

    def teardown(self) -> None:
        """After heal-and-settle: every acked message survives where durability says so;
        ``lost`` is exactly the acked messages whose durable copies were all destroyed
        before every member displayed them."""
        if not hasattr(self, "net"):
            return
        self.net.settle()
        self.displays_are_unique_ordered_and_authentic()
        self.non_members_never_receive()
        members = {c: list(v.members) for c, v in self.server.conversations.items()}
        records = list(self.net.messages.values())
        outcome = check(records, self.net.displays, members)
        assert outcome.duplicated == 0
        assert outcome.reordered == 0
        assert all(bool(r["acked"]) or bool(r["failed"]) for r in records), "unresolved sends"
        shown: dict[str, set[str]] = {}
        for d in self.net.displays:
            shown.setdefault(str(d["msg_id"]), set()).add(str(d["recipient"]))
        destroyed_unseen = {
            str(r["msg_id"])
            for r in records
            if r["acked"]
            and self.server.store.holders(str(r["msg_id"])) == 0
            and not set(members[str(r["conv_id"])]) - {r["sender"]}
            <= shown.get(str(r["msg_id"]), set())
        }
        assert set(outcome.lost_ids) == destroyed_unseen
        must_survive = self.wipes < self.config.write_quorum and (
            self.config.ack_after is AckAfter.STORE or not self.service_crashed
        )
        if must_survive:
            assert outcome.lost == 0, f"lost {outcome.lost_ids} with durability intact"


def bad_token(kind: str, keys: JwtKeys, now_s: float) -> str:
    """A token for u0 that the server must reject, of the given ``kind``."""
    if kind == "forged":
        other = JwtKeys.generate(JwtAlgorithm.HS256, random.Random(99))
        return JwtIssuer(other).issue("u0", now_s)
    if kind == "expired":
        return JwtIssuer(keys).issue("u0", now_s - 7200.0, ttl_s=3600.0)
    if kind == "wrong_audience":
        return JwtIssuer(keys, audience="another-service").issue("u0", now_s)
    if kind == "wrong_issuer":
        return JwtIssuer(keys, issuer="evil-idp").issue("u0", now_s)
    if kind == "alg_none":
        import jwt

        claims = {"sub": "u0", "aud": "msgsim-chat", "iss": "msgsim-idp", "iat": 0, "exp": 10**9}
        return jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    return "not-a-token"


# Interleavings are what find protocol bugs, so this test runs at least 150
# examples even in the fast profile (a few seconds on two cores).
ReferenceMachine.TestCase.settings = settings(
    ReferenceMachine.TestCase.settings,
    stateful_step_count=40,
    max_examples=max(150, settings.default.max_examples),
)
TestReferenceProtocol = ReferenceMachine.TestCase


class BrokenDedupClient(Client):
    """A client whose deduplication is disabled: redeliveries are displayed again."""

    def _is_duplicate(self, view: object, message: Deliver) -> bool:  # type: ignore[override]
        return False


class BrokenDedupMachine(ReferenceMachine):
    client_class = BrokenDedupClient


def test_state_machine_catches_disabled_dedup() -> None:
    """The invariants can fail: with dedup disabled, the machine finds a double display
    (and not some other failure, which would mean the invariants are blind to it)."""
    with pytest.raises(AssertionError, match=r"displayed twice to u\d"):
        run_state_machine_as_test(
            BrokenDedupMachine,
            settings=settings(
                max_examples=300,
                stateful_step_count=40,
                phases=[Phase.generate],
                deadline=None,
                database=None,
                derandomize=True,
            ),
        )
