"""The simulator's delivery semantics equal the reference implementation's.

Hypothesis generates scripts (users, conversations, sends, disconnects and
reconnects, store crashes and restarts under a durability setting, dropped
acks; see :mod:`sim.validation.reference`), runs each through the simulator and
through ``reference_impl`` over its deterministic network, and requires equal
outcomes: acked and failed per message; displays, lost, duplicated and
reordered per message and recipient; the displayed order per recipient and
conversation; and each implementation's own checker totals.

Deliberately broken simulators must be caught by the same comparison, so the
comparison is known to be able to fail.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable
from typing import Any, get_args

import pandas as pd
import pytest
from hypothesis import example, given, settings

from sim.model.run import Model
from sim.validation.reference import compare
from sim.validation.reference.compare import KNOWN_DIFFERENCES, validate_reference
from sim.validation.reference.driver import run_reference
from sim.validation.reference.script import START_S, Op, OpKind, Script, scripts, seeded_scripts
from sim.validation.reference.simulator import (
    LINKS,
    STORE_OP_S,
    TIMED_CLIENT_RTT_S,
    TIMED_INTERNAL_RTT_S,
    run_simulator,
    simulator_conversations,
    simulator_scenario,
)


def _assert_equal(script: Script, links: str = "instant") -> None:
    simulated = run_simulator(script, timed=links == "timed")
    diff = simulated.differences(run_reference(script))
    assert not diff, f"{links} links: {script}\n" + "\n".join(diff)


# Each example costs about 50 ms (both systems); 100 in the CI profile, more when
# MSGSIM_HYPOTHESIS_PROFILE asks for more (thorough: 1000). Every script runs with the
# simulator's instant links (each next step called directly) and with timed ones (frames
# scheduled after network delays, jobs queued at the gateway and the service).
@pytest.mark.parametrize("links", LINKS)
@settings(max_examples=max(100, settings.default.max_examples))
@given(scripts())
@example(  # every ack of one message lost: the sender gives up, the members display it
    Script(
        3, ((0, 1, 2),), (*[Op("drop_ack", 0)] * 5, Op("send", 0, 0, "x"), Op("send", 1, 0, "y"))
    )
)
@example(  # refused while the store is down; a retried send after a lost ack; an outbox
    Script(
        3,
        ((0, 1, 2), (1, 2)),
        (
            Op("crash_store"),
            Op("disconnect", 1),
            Op("send", 0, 0, "refused"),
            Op("send", 1, 1, "queued"),
            Op("connect", 1),
            Op("drop_ack", 2),
            Op("restart_store"),
            Op("send", 2, 0, "retried"),
            Op("send", 1, 1, "after"),
        ),
    )
)
@example(  # senders still offline at the end: their outboxes go out in a fixed order
    Script(
        4,
        ((0, 1, 2, 3),),
        (
            Op("disconnect", 3),
            Op("disconnect", 1),
            Op("send", 3, 0, "a"),
            Op("send", 1, 0, "b"),
            Op("send", 0, 0, "c"),
        ),
        "gateway",
    )
)
@example(  # the gateway crashes: three users queue sends, reconnect in order, sync
    Script(
        3,
        ((0, 1, 2),),
        (
            Op("send", 1, 0, "before"),
            Op("crash_gateway"),
            Op("send", 2, 0, "a"),
            Op("send", 0, 0, "b"),
            Op("drop_ack", 1),
            Op("send", 1, 0, "c"),
            Op("restart_gateway"),
            Op("send", 0, 0, "after"),
        ),
    )
)
def test_simulator_and_reference_have_equal_outcomes(links: str, script: Script) -> None:
    _assert_equal(script, links)


def test_the_timed_links_take_the_network_and_the_stations() -> None:
    """The timed variant exercises what the instant one skips: the send's ack comes a
    client round trip later at least, and gateway and service instances do work."""
    script = Script(2, ((0, 1),), (Op("send", 0, 0, "hello"),))
    convs, _ = simulator_conversations(script)
    times = {}
    for timed in (False, True):
        model = Model(simulator_scenario(script, timed=timed), 0, conversations=convs)
        # user 0 writes 5 bytes in its slot 0 (the one conversation)
        model.kernel.after(START_S, functools.partial(model.clients.send, 0, 0), 5)
        result = model.run(progress=False)
        msg = result.messages.iloc[0]
        times[timed] = msg["ack_time_s"] - msg["send_time_s"]
        jobs = sum(s.jobs for s in model.server.gateways + model.server.services)
        assert (jobs > 0) == timed
    assert times[False] == pytest.approx(STORE_OP_S)
    assert times[True] > TIMED_CLIENT_RTT_S + 2 * TIMED_INTERNAL_RTT_S


# ---------------------------------------------------------------- broken variants


def ack_before_store_write(model: Model) -> None:
    """The server acks at the gateway although the scenario promises the store."""
    model.server.gateway.ack_at_gateway = True
    model.server.service.ack_at_gateway = True


def no_idempotent_accept(model: Model) -> None:
    """The server forgets a message it stored: a re-send is stored again, a new seq."""
    gateway = model.server.gateway
    accept = gateway._accept

    def careless(ctx: Any) -> None:
        msg = ctx[0]
        if msg.durable:
            msg.durable = False
            msg.waiters = None
        accept(ctx)

    gateway._accept = careless


def no_sync_on_reconnect(model: Model) -> None:
    """A reconnecting client does not sync: it waits for pushes that never come."""
    clients = model.clients
    ready = clients.session_ready

    def careless(ctx: tuple[int, int, int]) -> None:
        request = clients._request_sync
        clients._request_sync = lambda *_: None  # type: ignore[method-assign]
        try:
            ready(ctx)
        finally:
            clients._request_sync = request  # type: ignore[method-assign]

    clients.session_ready = careless  # type: ignore[method-assign]


def connections_survive_a_gateway_crash(model: Model) -> None:
    """The server forgets to close the connections of a crashed gateway: clients keep
    sending into it and time out instead of reconnecting and syncing."""
    model.server.gateway_crashed = lambda gw: None  # type: ignore[method-assign]


@pytest.mark.parametrize("links", LINKS)
@pytest.mark.parametrize(
    "tamper",
    [
        ack_before_store_write,
        no_idempotent_accept,
        no_sync_on_reconnect,
        connections_survive_a_gateway_crash,
    ],
)
def test_a_broken_simulator_is_caught(tamper: Callable[[Model], None], links: str) -> None:
    """Within a few seeded scripts the broken simulator's outcome differs from the
    reference's, while the honest simulator's equals it on the same script."""
    timed = links == "timed"
    for script in seeded_scripts(40, seed=1):
        reference = run_reference(script)
        diff = run_simulator(script, tamper=tamper, timed=timed).differences(reference)
        if diff:
            assert not run_simulator(script, timed=timed).differences(reference)
            return
    pytest.fail(f"{tamper.__name__} was not caught by 40 scripts ({links} links)")


# ------------------------------------------------------------ known differences


def test_an_ack_at_the_gateway_while_the_store_is_down_is_kept_and_written_later() -> None:
    """Once a disagreement (the simulator tried the write once and lost the acked
    message); now both keep it in memory and write it when the store is back."""
    assert not KNOWN_DIFFERENCES
    script = Script(
        3,
        ((0, 1, 2),),
        (Op("crash_store"), Op("send", 0, 0, "in memory"), Op("restart_store")),
        "gateway",
    )
    simulated, reference = run_simulator(script), run_reference(script)
    assert not simulated.differences(reference)
    assert simulated.acked == (True,) and simulated.totals["lost"] == 0
    assert [simulated.pairs[(0, u)].displays for u in (1, 2)] == [1, 1]


# ------------------------------------------------------------------ the command


def test_seeded_scripts_are_reproducible_and_varied() -> None:
    first = list(seeded_scripts(30, seed=4))
    assert first == list(seeded_scripts(30, seed=4))
    assert first != list(seeded_scripts(30, seed=5))
    kinds = {op.kind for s in first for op in s.ops}
    assert kinds == set(get_args(OpKind))  # every kind of operation appears
    assert {s.durability for s in first} == {"store", "gateway"}
    assert any(len(m) >= 3 for s in first for m in s.conversations)


def test_msgsim_validate_reports_the_scripts_compared(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sim.validation.theory as theory
    from sim.cli.main import main

    table = pd.DataFrame(
        [
            {
                "case": "stub",
                "metric": "mean_wait_s",
                "theory": 1.0,
                "simulated": 1.0,
                "ci_low": 0.9,
                "ci_high": 1.1,
                "pass": True,
            }
        ]
    )
    monkeypatch.setattr(theory, "validate_theory", lambda **_: table)
    assert main(["validate", "--quiet", "--scripts", "12"]) == 0
    assert "simulator vs reference: 12 scripts, 12 equal outcomes" in capsys.readouterr().out
    summary = validate_reference(12, seed=1)
    assert summary.passed and summary.sends > 0
    # a simulator that differs makes the command fail and show the script
    broken = functools.partial(run_simulator, tamper=no_idempotent_accept)
    monkeypatch.setattr(compare, "run_simulator", broken)
    assert main(["validate", "--quiet", "--scripts", "12"]) == 1
    out = capsys.readouterr().out
    assert "simulator vs reference: 12 scripts, " in out and "differs (instant links):" in out
    assert "12 equal outcomes" not in out


def test_sim_does_not_import_reference_impl_or_hypothesis_at_import_time() -> None:
    code = (
        "import sys, sim.validation.reference.compare, sim.cli.main; "
        "bad = {'reference_impl', 'hypothesis'} & {m.split('.')[0] for m in sys.modules}; "
        "sys.exit(sorted(bad) or 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
