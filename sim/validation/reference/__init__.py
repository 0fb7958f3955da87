"""The simulator against the reference implementation, on scripted scenarios.

A script is a small, exact scenario: a few users, their conversations (member
lists, one of them a group when there are three users or more), the durability
setting, and operations at fixed times: sends, disconnects and reconnects,
crashes and restarts of the store and of the gateway, and acks the network
drops. Operations are far enough apart for both systems to settle in between,
so each system's outcome is a function of the script alone, not of timing
details that the two model differently.

The same script runs through both systems:

* the simulator builds a :class:`~sim.model.run.Model` with the script's exact
  conversation graph, nobody churning and no generated traffic, once with
  instant links and once with timed ones; sends, disconnects and reconnects are
  scheduled on its kernel, crashes are the scenario's ``faults:`` windows, and
  dropped acks go through the clients' ``ack_lost`` hook;
* the reference's driver runs ``reference_impl``'s deterministic in-memory
  network: it applies each operation, then delivers every frame in order and
  fires every timer until the next one.

Every script ends with restarts of a crashed gateway and a crashed store and
reconnects of every offline user, one step apart in user order, and then each
system settles. Each run gives an outcome built only from what the sender and
the recipients saw (acked and failed per message; displays, lost, duplicated and
reordered per message and recipient; the displayed order per recipient and
conversation; each implementation's own checker totals), and the two outcomes
must be equal. The adapters translate between the script and each system and
share no logic with either.

One concept per module, importers use the modules themselves:

* :mod:`~sim.validation.reference.script`: scripts, their generation (Hypothesis
  or a seeded generator) and the timing they share;
* :mod:`~sim.validation.reference.outcome`: the outcome of one run and its
  differences from another;
* :mod:`~sim.validation.reference.simulator`: the simulator's adapter
  (``run_simulator``);
* :mod:`~sim.validation.reference.driver`: the reference's adapter
  (``run_reference``);
* :mod:`~sim.validation.reference.compare`: seeded scripts through both, for
  ``msgsim validate`` (``validate_reference``).

Imports point one way: the adapters import the script and outcome modules, the
comparison imports the adapters, and the script module knows neither system.
``reference_impl`` and ``hypothesis`` are imported inside the functions that
need them: ``sim`` does not depend on them at import time.
"""
